# Two commands set everything up on a fresh machine:
#   make run    create .venv, install, scan the shipped samples (prints a table)
#   make test   create .venv, install, run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Exit code 1 means "something was flagged", which is the demo working, not failing.
run: setup
	$(VENV)/bin/detector scan samples/ || test $$? -eq 1

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

bench: setup
	$(PY) bench/bench_scan.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
