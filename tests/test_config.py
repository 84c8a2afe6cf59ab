"""Config loading: defaults, then a profile, then overrides; errors name the file, the field and a fix."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_type_hints

import pytest
import yaml

from nbforget import NbforgetError
from nbforget.config import DEFAULTS_FILE, PARAMS_DIR, REPO_ROOT, RunConfig, load_config

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"


def write_profile(folder: Path, text: str, name: str = "trial.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(params_file=None, overrides=None) -> str:
    with pytest.raises(NbforgetError) as caught:
        load_config(params_file, overrides)
    return str(caught.value)


def undocumented(cls: type, data: dict, where: str) -> list[str]:
    """Fields of the dataclass `cls` (recursively) that the YAML mapping `data` does not set."""
    missing = []
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        name = f"{where}{field.name}"
        if field.name not in data:
            missing.append(name)
        elif dataclasses.is_dataclass(hints[field.name]):
            missing += undocumented(hints[field.name], data[field.name] or {}, f"{name}.")
    return missing


def test_defaults_file_sets_every_field():
    """Adding a config field without documenting it in params/defaults.yaml fails here."""
    data = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert undocumented(RunConfig, data, "") == []


def test_defaults_file_matches_the_dataclass_defaults():
    assert load_config().to_dict() == RunConfig().to_dict()


@pytest.mark.parametrize("profile", sorted(p.name for p in (PARAMS_DIR / "profiles").glob("*.yaml")))
def test_every_profile_loads(profile):
    config = load_config(PARAMS_DIR / "profiles" / profile)
    assert config.profile == yaml.safe_load((PARAMS_DIR / "profiles" / profile).read_text()).get(
        "profile", Path(profile).stem)


def test_quick_profile_overrides_defaults_and_keeps_the_rest():
    config = load_config(QUICK_PROFILE)
    assert config.profile == "quick"
    assert config.languages == ["en-US", "ru-RU", "th-TH"]
    assert config.model.hidden_size == 64 and config.model.max_length == 64  # profile, default
    assert config.strategy.lora.rank == 4 and config.strategy.lora.dropout == 0.1
    assert config.train.learning_rate == 0.001 and isinstance(config.train.learning_rate, float)


def test_overrides_merge_into_nested_sections():
    config = load_config(QUICK_PROFILE, {"train": {"epochs": 3}, "strategy": {"lora": {"rank": 2}},
                                         "vitality_buckets": {"all": [0, 1, 2, 3, 4, 5]}})
    assert config.train.epochs == 3
    assert config.train.batch_size == 16 and config.train.patience == 2  # the profile's, untouched
    assert config.strategy.lora.rank == 2 and config.strategy.lora.target_modules == ["query", "key", "value", "dense"]
    assert config.vitality_buckets == {"all": [0, 1, 2, 3, 4, 5]}  # a user-keyed map is replaced whole


def test_profile_name_defaults_to_the_file_name(tmp_path):
    assert load_config(write_profile(tmp_path, "seeds: [1, 2]\n", "my-study.yaml")).profile == "my-study"
    assert load_config(write_profile(tmp_path, "profile: other\n")).profile == "other"


def test_unknown_key_names_file_and_suggests_a_close_match(tmp_path):
    path = write_profile(tmp_path, "train:\n  epoch: 3\n")
    message = error_of(path)
    assert str(path) in message and "train" in message
    assert "unknown key 'epoch'" in message and "did you mean 'epochs'?" in message


def test_unknown_top_level_key_without_close_match_lists_the_keys(tmp_path):
    message = error_of(write_profile(tmp_path, "zzzz: 1\n"))
    assert "unknown key 'zzzz'" in message and "known keys: profile, dataset, languages" in message


def test_unknown_key_in_overrides_names_overrides():
    message = error_of(QUICK_PROFILE, {"strategy": {"lora": {"rnak": 8}}})
    assert message.startswith("overrides.strategy.lora: unknown key 'rnak'; did you mean 'rank'?")


@pytest.mark.parametrize("text, field, expected", [
    ("train:\n  epochs: three\n", "train.epochs", "expected an integer"),
    ("train:\n  batch_size: true\n", "train.batch_size", "expected an integer"),
    ("train:\n  learning_rate: fast\n", "train.learning_rate", "expected a number"),
    ("train:\n  evaluate_dev: 1\n", "train.evaluate_dev", "expected true or false"),
    ("languages: en-US\n", "languages", "expected a list"),
    ("model: tiny\n", "model", "expected a mapping of fields of ModelConfig"),
    ("seeds: [0, one]\n", "seeds[1]", "expected an integer"),
])
def test_wrong_type_names_the_field(tmp_path, text, field, expected):
    path = write_profile(tmp_path, text)
    message = error_of(path)
    assert f"{path}.{field}:" in message and expected in message


def test_integer_is_accepted_where_a_number_is_expected(tmp_path):
    config = load_config(write_profile(tmp_path, "train:\n  learning_rate: 1\n"))
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)


def test_unknown_locale_names_its_position(tmp_path):
    path = write_profile(tmp_path, "languages: [en-US, de-DE, xx-XX]\n")
    message = error_of(path)
    assert "unknown locale 'xx-XX'" in message and "languages[2]" in message and str(path) in message
    assert "nbforget languages" in message


@pytest.mark.parametrize("order, expected", [
    (9, "unknown paper order 9"),
    ("random:x", "must be an integer"),
    ("backwards", "unknown order 'backwards'"),
    (["en-US", "de-DE"], "not a permutation"),
])
def test_bad_order_names_its_position(order, expected):
    message = error_of(QUICK_PROFILE, {"orders": [1, order]})
    assert expected in message and "orders[1]" in message and "quick.yaml" in message


def test_orders_of_every_kind_are_accepted():
    config = load_config(QUICK_PROFILE, {"orders": [1, "2", "random:7", ["th-TH", "en-US", "ru-RU"]]})
    assert config.orders[3] == ["th-TH", "en-US", "ru-RU"]


def test_bad_bf16_value_names_the_field_and_the_choices():
    message = error_of(QUICK_PROFILE, {"train": {"bf16": "maybe"}})
    assert "train.bf16 must be auto, on or off, got 'maybe'" in message


@pytest.mark.parametrize("text, expected", [("bf16: on", "on"), ("bf16: off", "off"), ("bf16: auto", "auto"),
                                            ("bf16: 'off'", "off")])
def test_bf16_accepts_unquoted_on_and_off(tmp_path, text, expected):
    """YAML 1.1 reads unquoted on/off as booleans; the documented values must still work."""
    assert load_config(write_profile(tmp_path, f"train:\n  {text}\n")).train.bf16 == expected


@pytest.mark.parametrize("overrides, expected", [
    ({"dataset": "imdb"}, "dataset 'imdb' unknown"),
    ({"languages": ["en-US", "en-US"]}, "languages has duplicates"),
    ({"languages": []}, "languages is empty"),
    ({"train": {"epochs": 0}}, "train.epochs and train.batch_size must be at least 1"),
    ({"model": {"hidden_size": 65}}, "hidden_size must be divisible by model.num_heads"),
    ({"strategy": {"merge": {"density": 0}}}, "density must be in (0, 1]"),
    ({"strategy": {"regularization": {"ewc_mode": "offline"}}}, "ewc_mode must be separate or online"),
])
def test_bad_values_are_refused_at_load(overrides, expected):
    assert expected in error_of(QUICK_PROFILE, overrides)


def test_missing_params_file_points_to_the_profiles(tmp_path):
    message = error_of(tmp_path / "absent.yaml")
    assert "absent.yaml does not exist" in message and "profiles" in message


def test_params_file_must_be_a_mapping(tmp_path):
    assert "expected a mapping" in error_of(write_profile(tmp_path, "- a\n- b\n"))


def test_relative_paths_resolve_from_the_repository():
    config = load_config(QUICK_PROFILE, {"runs_dir": "runs-elsewhere"})
    assert config.runs_path == PARAMS_DIR.parent / "runs-elsewhere"
    assert load_config(QUICK_PROFILE, {"runs_dir": "/tmp/x"}).runs_path == Path("/tmp/x")


def test_digest_follows_the_settings():
    assert load_config(QUICK_PROFILE).digest() == load_config(QUICK_PROFILE).digest()
    assert load_config(QUICK_PROFILE).digest() != load_config(QUICK_PROFILE, {"seeds": [1]}).digest()
