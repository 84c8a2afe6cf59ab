"""Config loading: defaults, then a profile, then overrides; errors name the file, the field and a fix."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import pytest
import yaml

from nbforget import NbforgetError
from nbforget.config import DEFAULTS_FILE, PARAMS_DIR, REPO_ROOT, RunConfig, load_config
from nbforget.languages import DATASETS, VITALITY_BUCKETS
from nbforget.strategies import REGISTRY

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"
PROFILES = sorted((PARAMS_DIR / "profiles").glob("*.yaml"))


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


def defaults_file_lines() -> dict[str, str]:
    """Key path (``train.bf16``) -> its line in params/defaults.yaml, comment included."""
    lines, path = {}, []
    for line in DEFAULTS_FILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"( *)(\w+):", line)
        if match:
            path[len(match[1]) // 2:] = [match[2]]
            lines[".".join(path)] = line
    return lines


def repeated_defaults(data: dict, defaults, where: str = "") -> list[str]:
    """Keys of the profile mapping `data` whose value is the one `defaults` (a config) has."""
    repeated = []
    for key, value in data.items():
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            repeated += repeated_defaults(value or {}, default, f"{where}{key}.")
        elif value == default:
            repeated.append(f"{where}{key}")
    return repeated


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_profiles_hold_only_their_differences_from_the_defaults(profile):
    """A profile that repeats a default hides which settings make it what it is, and keeps an old
    value when the default changes. The profile's name defaults to the file's name."""
    data = yaml.safe_load(profile.read_text(encoding="utf-8"))
    defaults = dataclasses.replace(load_config(), profile=profile.stem)
    assert repeated_defaults(data, defaults) == [], f"{profile.name}: drop these keys, they repeat the defaults"


def test_repeated_defaults_finds_a_repeated_value_at_any_depth():
    data = {"seeds": [0], "train": {"epochs": 10, "batch_size": 3}, "strategy": {"lora": {"rank": 32}},
            "vitality_buckets": {"low": [0, 1, 2], "mid": [3], "high": [4, 5]}, "languages": ["en-US"]}
    assert repeated_defaults(data, load_config()) == ["seeds", "train.epochs", "strategy.lora.rank",
                                                      "vitality_buckets"]


def literal_fields(cls: type = RunConfig, where: str = ""):
    """``(key path, type)`` of every field of the config's dataclasses whose type holds a Literal."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            yield from literal_fields(hint, f"{where}{field.name}.")
        elif holding_literal(hint, f"{where}{field.name}"):
            yield f"{where}{field.name}", hint


def holding_literal(hint, path: str):
    """``(choices, path of the element that takes one)`` of the Literal inside `hint`, or None."""
    args = get_args(hint)
    if get_origin(hint) is Literal:
        return args, path
    if get_origin(hint) is list:
        return holding_literal(args[0], f"{path}[0]")
    if get_origin(hint) is dict:
        return holding_literal(args[1], f"{path}.some_key")
    inner = [arg for arg in args if arg is not type(None)]  # Optional
    return holding_literal(inner[0], path) if len(inner) == 1 else None


def value_at(path: str, value) -> dict:
    """Overrides that set the element at key path `path` (``a.b[0]``) to `value`."""
    for part in reversed(re.findall(r"\[0\]|\w+", path)):
        value = [value] if part == "[0]" else {part: value}
    return value


LITERAL_FIELDS = dict(literal_fields())


def test_literal_fields_are_found():
    """The table below is not empty by accident: every choice field is typed as a Literal."""
    assert {"dataset", "train.bf16", "strategy.regularization.ewc_mode", "strategy.reversion.when",
            "strategy.merge.method", "strategy.merge.experts", "vitality_buckets"} <= set(LITERAL_FIELDS)


@pytest.mark.parametrize("field", LITERAL_FIELDS)
def test_literal_field_rejects_a_value_outside_its_choices(field):
    choices, path = holding_literal(LITERAL_FIELDS[field], field)
    bad = "zzzz" if isinstance(choices[0], str) else max(choices) + 1
    listed = ", ".join(str(c) for c in choices[:-1]) + f" or {choices[-1]}"
    assert error_of(QUICK_PROFILE, value_at(path, bad)) == f"overrides.{path}: expected {listed}, got {bad!r}"


@pytest.mark.parametrize("field", LITERAL_FIELDS)
def test_literal_field_accepts_each_of_its_choices(field):
    choices, path = holding_literal(LITERAL_FIELDS[field], field)
    for choice in choices:
        value = load_config(QUICK_PROFILE, value_at(path, choice))
        for part in path.replace("[0]", "").split("."):
            value = value.get(part) if isinstance(value, dict) else getattr(value, part)
        assert value == ([choice] if path.endswith("[0]") else choice)


@pytest.mark.parametrize("field", [f for f, hint in LITERAL_FIELDS.items() if get_origin(hint) is Literal
                                   and isinstance(get_args(hint)[0], str)])
def test_literal_field_suggests_the_choice_a_near_miss_meant(field, tmp_path):
    choice = get_args(LITERAL_FIELDS[field])[-1]
    *sections, key = field.split(".")
    text = "".join(f"{'  ' * depth}{name}:\n" for depth, name in enumerate(sections))
    path = write_profile(tmp_path, text + f"{'  ' * len(sections)}{key}: {choice[:-1]}\n")
    message = error_of(path)
    assert message.startswith(f"{path}.{field}: expected ") and f"got {choice[:-1]!r}" in message
    assert message.endswith(f"; did you mean {choice!r}?")


@pytest.mark.parametrize("field", [f for f, hint in LITERAL_FIELDS.items() if get_origin(hint) is Literal])
def test_defaults_file_documents_every_choice(field):
    line = defaults_file_lines()[field]
    undocumented_choices = [c for c in get_args(LITERAL_FIELDS[field]) if not re.search(rf"\b{c}\b", line)]
    assert undocumented_choices == [], f"params/defaults.yaml: {line.strip()!r}"


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
    assert "unknown key 'zzzz'" in message and "known keys: profile, dataset, task, languages" in message


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


@pytest.mark.parametrize("text, expected", [("2e-4", 2e-4), ("1E5", 1e5), ("1.5e-3", 1.5e-3), ("+3E+2", 300.0),
                                            ("5.0e-05", 5e-5)])
def test_numbers_with_an_exponent_are_numbers(tmp_path, text, expected):
    """YAML 1.1 reads 2e-4 and 1E5 (no dot, or no sign after the e) as text; they are numbers."""
    assert yaml.safe_load(f"x: {text}")["x"] in (text, expected)  # what PyYAML gives: text for most of them
    config = load_config(write_profile(tmp_path, f"train:\n  learning_rate: {text}\n"))
    assert config.train.learning_rate == expected and isinstance(config.train.learning_rate, float)
    assert load_config(QUICK_PROFILE, {"train": {"lora_learning_rate": text}}).train.lora_learning_rate == expected
    assert load_config(QUICK_PROFILE, {"strategy": {"regularization": {"layer_weights": {"head": text}}}}
                       ).strategy.regularization.layer_weights == {"head": expected}


def test_an_exponent_number_is_an_integer_where_one_is_expected_if_it_is_whole(tmp_path):
    assert load_config(write_profile(tmp_path, "train:\n  max_train_examples: 1E3\n")).train.max_train_examples == 1000
    message = error_of(write_profile(tmp_path, "train:\n  max_train_examples: 2.5e0\n"))
    assert "train.max_train_examples: expected an integer, got '2.5e0'" in message
    assert "expected a number, got 'fast'" in error_of(QUICK_PROFILE, {"train": {"learning_rate": "fast"}})


def test_exponent_numbers_in_a_sweep_are_numbers():
    config = load_config(QUICK_PROFILE, {"sweep": {"lr": {"train.learning_rate": ["1e-3", "2E-3"]}}})
    assert config.sweep == {"lr": {"train.learning_rate": [0.001, 0.002]}}


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
    assert "overrides.train.bf16: expected auto, on or off, got 'maybe'" in message


@pytest.mark.parametrize("text, expected", [("bf16: on", "on"), ("bf16: off", "off"), ("bf16: auto", "auto"),
                                            ("bf16: 'off'", "off")])
def test_bf16_accepts_unquoted_on_and_off(tmp_path, text, expected):
    """YAML 1.1 reads unquoted on/off as booleans; the documented values must still work."""
    assert load_config(write_profile(tmp_path, f"train:\n  {text}\n")).train.bf16 == expected


@pytest.mark.parametrize("overrides, expected", [
    ({"dataset": "imdb"}, f"overrides.dataset: expected {', '.join(DATASETS[:-1])} or {DATASETS[-1]}, got 'imdb'"),
    ({"languages": ["en-US", "en-US"]}, "languages has duplicates"),
    ({"languages": []}, "languages is empty"),
    ({"train": {"epochs": 0}}, "train.epochs and train.batch_size must be at least 1"),
    ({"model": {"hidden_size": 65}}, "hidden_size must be divisible by model.num_heads"),
    ({"strategy": {"merge": {"density": 0}}}, "density must be in (0, 1]"),
    ({"strategy": {"regularization": {"ewc_mode": "offline"}}},
     "overrides.strategy.regularization.ewc_mode: expected separate or online, got 'offline'"),
    ({"vitality_buckets": {"low": [0, 1, 2, 3], "mid": [3], "high": [4, 5]}},
     "vitality_buckets puts Joshi class 3 in both 'low' and 'mid'"),
    ({"vitality_buckets": {"low": [0, 1, 2], "high": [4, 9]}}, "overrides.vitality_buckets.high[1]: expected 0, 1"),
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


def test_default_vitality_buckets_are_the_languages_ones():
    assert RunConfig().vitality_buckets == {name: list(classes) for name, classes in VITALITY_BUCKETS.items()}


@pytest.mark.parametrize("overrides, where", [
    ({"strategies": ["vanilla", "vanila"]}, "strategies[1]"),
    ({"orders_by_strategy": {"vanila": [1]}}, "orders_by_strategy.vanila"),
])
def test_unknown_strategy_names_its_key_and_the_close_match(overrides, where):
    from nbforget.strategies import check_names

    config = load_config(QUICK_PROFILE, overrides)  # the registry is not needed to load a config
    with pytest.raises(NbforgetError) as caught:
        check_names(config)
    message = str(caught.value)
    assert "unknown strategy 'vanila'; did you mean 'vanilla'?" in message
    assert f"(in {QUICK_PROFILE} + overrides: {where})" in message
    assert f"registered: {', '.join(REGISTRY)}" in message


def test_every_registered_strategy_is_accepted():
    from nbforget.strategies import check_names

    assert check_names(load_config(QUICK_PROFILE, {"strategies": list(REGISTRY)})).strategies == list(REGISTRY)
