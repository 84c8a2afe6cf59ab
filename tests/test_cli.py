"""The command line: exit codes and messages (in this process, through `nbforget.cli.main`)."""
from __future__ import annotations

import pytest

from nbforget.cli import _overrides, main
from nbforget.config import REPO_ROOT
from nbforget.languages import LANGUAGES
from nbforget.strategies import REGISTRY

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_languages_prints_the_52_project_languages(capsys):
    code, out, _ = run(capsys, "languages")
    lines = out.strip().splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["locale", "name", "script"]
    assert len(lines) - 1 == 52
    assert {line.split()[0] for line in lines[1:]} <= set(LANGUAGES)


def test_languages_all_adds_languages_outside_massive(capsys):
    code, out, _ = run(capsys, "languages", "--all")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) - 1 > 52 and "massive" in lines[0].split()


def test_run_with_unknown_strategy_names_it_and_the_registered_ones(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--params", str(QUICK_PROFILE), "--strategy", "vanila",
                       "--set", f"runs_dir={tmp_path / 'runs'}")
    assert code == 2
    assert "unknown strategy 'vanila'" in err and "did you mean 'vanilla'?" in err
    for name in REGISTRY:
        assert name in err
    assert not (tmp_path / "runs").exists()  # refused before anything is written


@pytest.mark.parametrize("setting, expected", [
    ("train.epochs", "--set 'train.epochs': expected KEY=VALUE, e.g. --set train.epochs=3"),
    ("train.epochs=three", "overrides.train.epochs: expected an integer, got 'three'"),
    ("trian.epochs=3", "overrides: unknown key 'trian'; did you mean 'train'?"),
    ("train.bf16=sometimes", "overrides.train.bf16: expected auto, on or off, got 'sometimes'"),
])
def test_run_with_bad_set_exits_2_with_the_setting_named(capsys, setting, expected):
    code, _, err = run(capsys, "run", "--params", str(QUICK_PROFILE), "--strategy", "vanilla", "--set", setting)
    assert code == 2
    assert err.startswith("nbforget: error: ") and expected in err


def test_run_with_missing_params_file(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--params", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml does not exist" in err


def test_set_values_are_parsed_as_yaml_into_nested_settings():
    assert _overrides(["train.epochs=3", "languages=[en-US, de-DE]", "train.bf16=off", "model.name=a=b"]) == {
        "train": {"epochs": 3, "bf16": False}, "languages": ["en-US", "de-DE"], "model": {"name": "a=b"}}
    assert _overrides([]) == {} and _overrides(None) == {}


def test_set_takes_numbers_written_with_an_exponent(capsys, tmp_path):
    """`--set train.learning_rate=2e-4` (YAML 1.1 reads 2e-4 as text) sets the number."""
    from nbforget.config import load_config

    overrides = _overrides(["train.learning_rate=2e-4", "train.lora_learning_rate=1E-5"])
    config = load_config(QUICK_PROFILE, overrides)
    assert (config.train.learning_rate, config.train.lora_learning_rate) == (2e-4, 1e-5)
    code, out, err = run(capsys, "grid", "--params", str(QUICK_PROFILE), "--list", "--set",
                         "train.learning_rate=2e-4", "--set", f"runs_dir={tmp_path / 'runs'}")
    assert code == 0 and err == "" and "vanilla" in out
    code, _, err = run(capsys, "grid", "--params", str(QUICK_PROFILE), "--list", "--set", "train.learning_rate=2x-4")
    assert code == 2 and "overrides.train.learning_rate: expected a number, got '2x-4'" in err


def test_unknown_benchmark_lists_the_available_ones(capsys):
    code, _, err = run(capsys, "bench", "no_such_benchmark")
    assert code == 2 and "no benchmark 'no_such_benchmark'" in err and "train_throughput" in err
    assert "e5_throughput" in err and "_measure" not in err  # the shared helpers module is no benchmark


def test_the_benchmarks_helper_module_is_not_run_as_a_benchmark(capsys):
    code, _, err = run(capsys, "bench", "_measure")
    assert code == 2 and "no benchmark '_measure'" in err and "available: e5_throughput, train_throughput" in err


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["fly"])
    assert caught.value.code == 2 and "invalid choice: 'fly'" in capsys.readouterr().err


@pytest.mark.parametrize("text, order", [("3", 3), ("random:7", "random:7"), ("[en-US, de-DE]", ["en-US", "de-DE"]),
                                         ("[en-US", "[en-US"), (None, None)])
def test_order_flag_reads_paper_orders_random_orders_and_lists(text, order):
    from nbforget.cli import _order

    assert _order(text) == order
