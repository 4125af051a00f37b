# Two commands set everything up on a fresh machine:
#   make run    create .venv, install, scan the shipped samples (prints a table)
#   make test   create .venv, install, run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench model corpus corpus-quick corpus-long samples clean

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

# The labelled corpus (ignored by git): 100 clips per class for the default model, a quick
# one for CI, and the separate 10-minute set for benchmarks. Resumable: re-run to continue.
corpus: setup
	$(VENV)/bin/detector samples make corpus/default --per-class 100 --seed 0

corpus-quick: setup
	$(VENV)/bin/detector samples make corpus/quick --quick --seed 0

corpus-long: setup
	$(VENV)/bin/detector samples make corpus/long --long --seed 0

# The default model: the corpus above, its features (cached: a re-run extracts only what is
# new), then training with a fixed seed. Same corpus, same code: same model card metrics.
model: corpus
	$(VENV)/bin/detector features corpus/default/manifest.csv -o corpus/default/features.parquet
	$(VENV)/bin/detector train corpus/default/features.parquet -o models/default --seed 0

samples: setup
	$(PY) samples/make_samples.py samples/

bench: setup
	$(PY) bench/bench_scan.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
