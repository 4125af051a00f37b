"""Every registered extractor keeps the interface's promises; the feature docs are current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from detector.config import ConfigError, ScanConfig, load_config
from detector.extractors import REGISTRY, build_extractors
from detector.pipeline import extract, feature_columns, features_markdown

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_column_is_documented(name):
    cls = REGISTRY[name]
    assert cls.name == name
    assert set(cls.COLUMN_DOCS) == set(cls.FEATURES), "FEATURES and COLUMN_DOCS disagree"
    for key, doc in cls.COLUMN_DOCS.items():
        assert doc.meaning and doc.unit and doc.range and doc.speaks_for, key
        assert "__" not in key


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_settings_are_frozen_dataclasses_with_defaults(name):
    settings_class = REGISTRY[name].Settings
    assert dataclasses.is_dataclass(settings_class)
    assert settings_class.__dataclass_params__.frozen
    settings_class()   # every field has a default


def test_each_extractor_returns_every_column_on_a_real_clip(moving_clip):
    result = extract(moving_clip, ScanConfig(), build_extractors())
    assert list(result.features) == feature_columns()
    assert all(isinstance(v, float) for v in result.features.values())
    for evidence in result.evidence:
        assert 0.0 <= evidence.score <= 1.0
        assert 0.0 <= evidence.start_s <= evidence.end_s <= result.duration_s + 0.5


def test_docs_features_table_is_up_to_date():
    committed = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == features_markdown(), "regenerate: python -m detector.pipeline > docs/features.md"


def test_extractor_table_in_toml_overrides_settings(tmp_path):
    name = next(n for n in sorted(REGISTRY) if dataclasses.fields(REGISTRY[n].Settings))
    field = dataclasses.fields(REGISTRY[name].Settings)[0]
    default = getattr(REGISTRY[name].Settings(), field.name)
    value = default * 2 if isinstance(default, (int, float)) and not isinstance(default, bool) else default
    config_file = tmp_path / "c.toml"
    config_file.write_text(f"[{name}]\n{field.name} = {value!r}\n".replace("'", '"'))
    config = load_config(config_file)
    assert getattr(REGISTRY[name](config).settings, field.name) == value


@pytest.mark.parametrize(
    "toml, message",
    [("[no_such_extractor]\nx = 1\n", "unknown extractors"),
     ("[basic]\nno_such_setting = 1\n", "unknown setting 'no_such_setting'")],
    ids=["unknown-extractor", "unknown-setting"],
)
def test_bad_extractor_tables_are_config_errors(tmp_path, toml, message):
    config_file = tmp_path / "c.toml"
    config_file.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(config_file)


