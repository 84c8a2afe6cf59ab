"""Per-strategy settings (``by_strategy``) and sweeps: how runs are resolved, planned, listed and read."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import yaml

from nbforget import NbforgetError
from nbforget.cli import main
from nbforget.config import REPO_ROOT, RunConfig, leaf_settings, load_config
from nbforget.strategies import (REGISTRY, check_names, get_strategy, planned_runs, run_store, strategy_config,
                                 strategy_points)

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"
PAPER_PROFILE = REPO_ROOT / "params" / "profiles" / "paper.yaml"
RANK_AND_DATA = {"rank": {"strategy.lora.rank": [2, 4]}, "data": {"train.max_train_examples": [16, 24]}}


def quick(overrides: dict | None = None, **settings) -> RunConfig:
    return load_config(QUICK_PROFILE, {**(overrides or {}), **settings})


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(NbforgetError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# by_strategy
# ---------------------------------------------------------------------------------------------


def test_a_group_entry_applies_to_its_members_only():
    config = quick(by_strategy={"lora": {"train": {"epochs": 7, "patience": 3}}})
    for name, cls in REGISTRY.items():
        resolved = strategy_config(config, name)
        assert (resolved.train.epochs, resolved.train.patience) == ((7, 3) if cls.uses_lora else (2, 2)), name


def test_a_strategy_entry_wins_over_its_group_and_dotted_keys_equal_nested_ones():
    config = quick(by_strategy={"full": {"train.epochs": 5}, "vanilla": {"train": {"epochs": 9}}})
    assert strategy_config(config, "vanilla").train.epochs == 9
    assert strategy_config(config, "mono").train.epochs == 5
    assert strategy_config(config, "shared_lora").train.epochs == 2
    assert config.by_strategy["full"] == {"train": {"epochs": 5}}  # dotted keys are read as nested


def test_resolving_twice_changes_nothing():
    config = quick(by_strategy={"lora": {"train": {"epochs": 7}}})
    once = strategy_config(config, "shared_lora")
    assert strategy_config(once, "shared_lora").to_dict() == once.to_dict()


def test_an_explicit_override_wins_over_by_strategy(tmp_path):
    profile = tmp_path / "trial.yaml"
    profile.write_text(QUICK_PROFILE.read_text() + "by_strategy:\n  lora:\n    train:\n      epochs: 7\n")
    assert strategy_config(load_config(profile), "shared_lora").train.epochs == 7
    assert strategy_config(load_config(profile, {"train": {"epochs": 3}}), "shared_lora").train.epochs == 3


def test_by_strategy_is_part_of_the_identity_of_the_runs_it_changes_only(tmp_path):
    plain = quick(runs_dir=str(tmp_path))
    longer = quick(runs_dir=str(tmp_path), by_strategy={"lora": {"train": {"epochs": 7}}})
    assert run_store(plain, "vanilla").path == run_store(longer, "vanilla").path
    assert run_store(plain, "shared_lora").path != run_store(longer, "shared_lora").path
    # the same settings given directly are the same run: a run is named by what it ran with
    direct = quick(runs_dir=str(tmp_path), train={"epochs": 7})
    assert run_store(direct, "shared_lora").path == run_store(longer, "shared_lora").path


def test_the_paper_profile_uses_the_papers_settings_per_group():
    """Khelli et al. 2025, section 3.2: LoRA 100 epochs, patience 15, learning rate 5e-6; without
    LoRA 50 epochs, patience 5, 5e-5; LoRA ranks 32, 64 and 256 (Table 1), swept for the LoRA
    strategies only; 60 runs over the five orders."""
    config = load_config(PAPER_PROFILE)
    for name in config.strategies:
        train = strategy_config(config, name).train
        if get_strategy(name).uses_lora:
            assert (train.epochs, train.patience, train.lora_learning_rate) == (100, 15, 5e-6), name
        else:
            assert (train.epochs, train.patience, train.learning_rate) == (50, 5, 5e-5), name
    assert config.sweep == {"rank": {"strategy.lora.rank": [32, 64, 256]}}
    ranks = {name: [run.swept.get("strategy.lora.rank") for run in planned_runs(config, [name], orders=[1])]
             for name in config.strategies}
    assert ranks == {"multi": [None], "mono": [None], "vanilla": [None], "shared_lora": [32, 64, 256],
                     "multi_lora": [32, 64, 256], "nonshared_lora": [32, 64, 256]}
    assert len(planned_runs(config, config.strategies)) == 3 * 5 + 3 * 5 * 3


@pytest.mark.parametrize("by_strategy, expected", [
    ({"vanila": {"train": {"epochs": 3}}}, "unknown strategy or group 'vanila'; did you mean 'vanilla'?"),
    ({"loro": {"train": {"epochs": 3}}}, "did you mean 'lora'?"),
    ({"lora": {"train": {"learning_rate": 0.1}}},
     "by_strategy.lora.train.learning_rate (in ", ),
    ({"lora": {"train": {"learning_rate": 0.1}}}, "set that instead"),
    ({"vanilla": {"strategy": {"lora": {"rank": 8}}}}, "it is read by shared_lora, multi_lora, nonshared_lora"),
])
def test_by_strategy_names_and_unread_settings_are_refused(by_strategy, expected):
    config = quick(by_strategy=by_strategy)
    assert expected in error_of(check_names, config)


@pytest.mark.parametrize("by_strategy, expected", [
    ({"lora": {"train": {"epochs": "many"}}}, "overrides: by_strategy.lora.train.epochs: expected an integer, got 'many'"),
    ({"lora": {"train": {"epoch": 3}}}, "by_strategy.lora.train: unknown key 'epoch'; did you mean 'epochs'?"),
    ({"lora": {"languages": ["en-US"]}}, "by_strategy.lora.languages: a strategy's own settings are in train, model"),
    ({"lora": {"trian": {"epochs": 3}}}, "did you mean 'train'?"),
    ({"lora": {"train": {"patience": 0}}}, "by_strategy.lora: train.patience is 0 (in --set by_strategy.lora.train"),
    ({"lora": 3}, "by_strategy.lora is 3; give a mapping of settings"),
])
def test_bad_by_strategy_values_are_refused_at_load(by_strategy, expected):
    assert expected in error_of(quick, by_strategy=by_strategy)


@pytest.mark.slow
def test_a_run_records_the_settings_by_strategy_gave_it(quick_config):
    from nbforget.engine import run_strategy

    config = quick_config({"by_strategy": {"multi": {"train": {"epochs": 1}}}})
    folder = run_strategy(config, "multi", progress=False)
    record = yaml.safe_load((folder / "config.yaml").read_text())
    assert record["config"]["train"]["epochs"] == 1 and record["settings"]["train"]["epochs"] == 1
    assert record["by_strategy"] == {"train.epochs": 1}
    history = yaml.safe_load((folder / "progress.json").read_text())["steps"][0]["history"]
    assert len(history["dev"]) == 1  # it trained one epoch, not the profile's two


def test_run_without_order_runs_the_orders_the_grid_runs(monkeypatch, tmp_path, capsys):
    """MONO's models do not depend on the order: a profile that gives it one order (the embedded
    one does) must not have `nbforget run` train it once per profile order."""
    import nbforget.engine

    calls = []
    monkeypatch.setattr(nbforget.engine, "run_strategy",
                        lambda config, strategy, *, order, seed, progress: calls.append((strategy, order, seed)) or tmp_path)
    code = main(["run", "--params", str(QUICK_PROFILE), "--strategy", "mono", "--quiet", "--set", "orders=[1, 2]",
                 "--set", "orders_by_strategy={mono: [2]}", "--set", f"runs_dir={tmp_path}"])
    assert code == 0 and calls == [("mono", 2, 0)]
    calls.clear()
    assert main(["run", "--params", str(QUICK_PROFILE), "--strategy", "vanilla", "--quiet", "--set", "orders=[1, 2]",
                 "--set", "orders_by_strategy={mono: [2]}", "--set", f"runs_dir={tmp_path}"]) == 0
    assert calls == [("vanilla", 1, 0), ("vanilla", 2, 0)]
    calls.clear()
    assert main(["run", "--params", str(QUICK_PROFILE), "--strategy", "shared_lora", "--order", "1", "--quiet",
                 "--set", "sweep={rank: {strategy.lora.rank: [2, 4]}}", "--set", f"runs_dir={tmp_path}"]) == 0
    assert calls == [("shared_lora", 1, 0), ("shared_lora", 1, 0)]  # one run per sweep point
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# sweep expansion
# ---------------------------------------------------------------------------------------------


def test_sweep_expands_the_product_of_the_axes_a_strategy_reads(tmp_path):
    config = quick(runs_dir=str(tmp_path), sweep=RANK_AND_DATA)
    runs = planned_runs(config)
    by_strategy = {name: [run.swept for run in runs if run.strategy == name] for name in config.strategies}
    both = [{"strategy.lora.rank": rank, "train.max_train_examples": size} for rank in (2, 4) for size in (16, 24)]
    data_only = [{"train.max_train_examples": size} for size in (16, 24)]
    for name, swept in by_strategy.items():
        assert swept == (both if get_strategy(name).reads("strategy.lora.rank") else data_only), name
    assert len({run.store.path for run in runs}) == len(runs)  # every point its own run, none twice
    assert len(runs) == 3 * 4 + 9 * 2  # the LoRA strategies (shared, multi, non-shared) read both axes


def test_each_point_is_the_run_of_its_settings(tmp_path):
    config = quick(runs_dir=str(tmp_path), sweep=RANK_AND_DATA)
    for run in planned_runs(config, ["shared_lora"]):
        direct = quick(runs_dir=str(tmp_path), strategy={"lora": {"rank": run.point["strategy.lora.rank"]}},
                       train={"max_train_examples": run.point["train.max_train_examples"]})
        assert run_store(direct, "shared_lora").path == run.store.path


def test_an_axis_moves_its_settings_in_lockstep_and_a_strategy_reads_only_its_own(tmp_path):
    sweep = {"lr": {"train.learning_rate": [0.001, 0.002], "train.lora_learning_rate": [0.01, 0.02]}}
    config = quick(runs_dir=str(tmp_path), sweep=sweep, strategies=["vanilla", "shared_lora"])
    runs = planned_runs(config)
    assert [run.swept for run in runs] == [{"train.learning_rate": 0.001}, {"train.learning_rate": 0.002},
                                           {"train.lora_learning_rate": 0.01}, {"train.lora_learning_rate": 0.02}]
    assert [strategy_config(run.config, run.strategy).train.lora_learning_rate for run in runs[2:]] == [0.01, 0.02]


def test_points_that_do_not_change_a_strategys_run_are_one_run(tmp_path):
    sweep = {"lr": {"train.learning_rate": [0.001, 0.001], "train.lora_learning_rate": [0.01, 0.02]}}
    config = quick(runs_dir=str(tmp_path), sweep=sweep, strategies=["vanilla", "shared_lora"])
    assert [(run.strategy, run.swept) for run in planned_runs(config)] == [
        ("vanilla", {"train.learning_rate": 0.001}),
        ("shared_lora", {"train.lora_learning_rate": 0.01}), ("shared_lora", {"train.lora_learning_rate": 0.02})]


def test_a_set_of_a_swept_setting_pins_its_axis():
    config = quick(sweep=RANK_AND_DATA, strategy={"lora": {"rank": 8}})
    assert strategy_points(config, "shared_lora") == [{"train.max_train_examples": 16},
                                                      {"train.max_train_examples": 24}]


def test_no_sweep_is_one_point_per_strategy():
    assert strategy_points(quick(), "vanilla") == [{}]


def test_reads_says_what_the_run_identity_holds():
    """`Strategy.reads` (which axes concern a strategy, which by_strategy keys it reads) and
    `Strategy.run_identity` (what names its runs) agree on every setting (an empty
    held_out_languages is left out of the identity, so the config holds one out)."""
    config = quick(held_out_languages=["de-DE"])
    everything = leaf_settings(dataclasses.asdict(config))
    for name, cls in REGISTRY.items():
        identity = leaf_settings(cls.run_identity(config, ("en-US",), 0)["settings"])
        for key in everything:
            if key.split(".")[0] in RunConfig.NOT_RESULT_FIELDS + RunConfig.EXECUTION_FIELDS:
                assert not cls.reads(key), (name, key)
                continue
            assert cls.reads(key) == (key in identity), (name, key)


# ---------------------------------------------------------------------------------------------
# sweep validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sweep, expected", [
    ({"rank": {"strategy.lora.rnak": [2, 4]}}, "sweep.rank.strategy.lora.rnak (in --set sweep.rank.strategy.lora.rnak"
                                               "=[2, 4]): strategy.lora.rnak is not a setting: strategy.lora has no "
                                               "'rnak'; did you mean 'rank'?"),
    ({"rank": {"strategy.lora.rank": 4}}, "sweep.rank.strategy.lora.rank is 4 (in --set sweep.rank.strategy.lora."
                                          "rank=4); give the list of values to run"),
    ({"rank": {"strategy.lora.rank": []}}, "give the list of values to run"),
    ({"rank": {"strategy.lora.rank": [2, "big"]}}, "sweep.rank.strategy.lora.rank[1]: expected an integer, got 'big'"),
    ({"rank": {"strategy.lora.rank": [2, 0]}}, "sweep point strategy.lora.rank=0: strategy.lora.rank is 0 "
                                               "(in --set sweep.rank.strategy.lora.rank=[2, 0]); the LoRA rank must"),
    ({"rank": {"strategy.lora.rank": [2, 2]}}, "sweep.rank (in --set sweep.rank=") ,
    ({"rank": {"strategy.lora.rank": [2, 4], "strategy.lora.alpha": [2]}},
     "equally long, but strategy.lora.rank has 2, strategy.lora.alpha has 1 values"),
    ({"a": {"train.epochs": [1, 2]}, "b": {"train.epochs": [3]}}, "train.epochs is swept by axis 'a' already"),
    ({"s": {"seeds": [[0], [1]]}}, "seeds cannot be swept: every seed in `seeds:` is run already"),
    ({"s": {"runs_dir": ["a", "b"]}}, "runs_dir cannot be swept: it does not change a run's result"),
    ({"s": {"train": [1, 2]}}, "train is a section, not one setting"),
    ({"s": {"strategy.reversion.layer_alpha.layer.0": [0.1]}}, "strategy.reversion.layer_alpha is one setting"),
    ({"s": {"strategy.lora.target_modules": "query"}}, "(each value a list itself)"),
    ({"rank": []}, "sweep.rank is []; an axis maps one or more settings to lists of values"),
])
def test_bad_sweeps_are_refused_with_the_key_and_the_fix(sweep, expected):
    assert expected in error_of(quick, sweep=sweep)


def test_an_axis_no_strategy_of_the_profile_reads_is_refused():
    config = quick(sweep={"rank": {"strategy.lora.rank": [2, 4]}}, strategies=["vanilla", "mono"])
    message = error_of(check_names, config)
    assert "sweep.rank" in message and "none of the strategies run (vanilla, mono) reads strategy.lora.rank" in message
    assert "read by shared_lora, multi_lora, nonshared_lora" in message


@pytest.mark.parametrize("argument, expected", [
    ("sweep={rank: {strategy.lora.rank: [2, x]}}", "sweep.rank.strategy.lora.rank[1]: expected an integer, got 'x'"),
    ("sweep={rank: {strategy.lora.rnak: [2]}}", "did you mean 'rank'?"),
    ("by_strategy={lora: {train: {epochs: 0}}}", "by_strategy.lora: train.epochs is 0"),
])
def test_grid_list_with_a_bad_sweep_exits_2_and_writes_nothing(capsys, tmp_path, argument, expected):
    code = main(["grid", "--params", str(QUICK_PROFILE), "--list", "--set", f"runs_dir={tmp_path / 'runs'}",
                 "--set", argument])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nbforget: error: ") and expected in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# nbforget grid --list, and the study's swept columns (real runs)
# ---------------------------------------------------------------------------------------------


def cli(*argv: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "nbforget.cli", *argv], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=environment, timeout=600)


def listed(output: str) -> list[list[str]]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["strategy", "order", "seed", "swept", "status", "run", "folder"]
    return [line.split() for line in lines[1:-1]]


@pytest.mark.slow
def test_grid_list_prints_every_run_and_follows_their_status(tmp_path, data_ready):
    settings = ["--set", f"runs_dir={tmp_path / 'runs'}", "--set", "strategies=[multi, shared_lora]",
                "--set", "sweep={rank: {strategy.lora.rank: [2, 4]}, data: {train.max_train_examples: [16, 24]}}"]
    first = cli("grid", "--params", str(QUICK_PROFILE), "--list", *settings)
    assert first.returncode == 0, first.stderr
    rows = listed(first.stdout)
    assert [(row[0], row[3]) for row in rows] == [
        ("multi", "train.max_train_examples=16"), ("multi", "train.max_train_examples=24"),
        ("shared_lora", "strategy.lora.rank=2,"), ("shared_lora", "strategy.lora.rank=2,"),
        ("shared_lora", "strategy.lora.rank=4,"), ("shared_lora", "strategy.lora.rank=4,")]
    assert all(row[-2] == "missing" for row in rows)
    assert first.stdout.strip().splitlines()[-1] == "6 run(s) of profile quick: 0 complete, 0 partial, 6 missing"
    assert not (tmp_path / "runs").exists()  # listing runs nothing

    # one run of the sweep's first data point, made without the sweep: the same settings, the same run
    made = cli("run", "--params", str(QUICK_PROFILE), "--strategy", "multi", "--quiet", "--set",
               f"runs_dir={tmp_path / 'runs'}", "--set", "train.max_train_examples=16")
    assert made.returncode == 0, made.stderr
    again = listed(cli("grid", "--params", str(QUICK_PROFILE), "--list", *settings).stdout)
    assert [row[-2] for row in again] == ["complete"] + ["missing"] * 5
    assert again[0][-1] == made.stdout.strip().split(": ")[-1]


@pytest.mark.slow
def test_the_study_has_a_column_per_swept_setting(quick_config):
    from nbforget.analysis import load_study, run_metrics
    from nbforget.engine import run_strategy

    config = quick_config({"sweep": RANK_AND_DATA, "strategies": ["multi", "shared_lora"]})
    for run in planned_runs(config, ["multi"]):
        run_strategy(run.config, run.strategy, order=run.order, seed=run.seed, progress=False)
    study = load_study(config)
    table = study.runs_table()
    assert list(table.columns) == ["strategy", "order", "seed", "strategy.lora.rank", "train.max_train_examples",
                                   "run_dir"]
    assert sorted(table["train.max_train_examples"]) == [16, 24]
    assert table["strategy.lora.rank"].isna().all()  # MULTI does not read the rank
    assert len(study.missing) == 4  # the four SHARED LoRA points
    metrics = run_metrics(study)
    assert sorted(metrics["train.max_train_examples"]) == [16, 24]
    assert {run.swept["train.max_train_examples"] for run in study.all_runs} == {16, 24}
    # MULTI has a run at each data point: an analysis of study.runs would average them
    assert study.points() == [{"train.max_train_examples": 16}, {"train.max_train_examples": 24}]
    assert "multi at train.max_train_examples=16 and train.max_train_examples=24" in error_of(lambda: study.runs)
    assert [run.swept for run in study.first_point().runs] == [{"train.max_train_examples": 16}]


@pytest.mark.slow
def test_analyses_read_one_sweep_point_of_real_runs(quick_config):
    """Real runs of a rank sweep (VANILLA once, SHARED LoRA at ranks 2 and 4; rank 8 never run):
    `Study.runs` refuses to mix the ranks, `at` and `first_point` give one rank's runs with
    VANILLA's, the overview's Table 1 has a row per rank, and without the sweep nothing changed."""
    from nbforget.analysis import load_study, table1, table1_comparison, table1_comparison_by_point
    from nbforget.engine import run_strategy

    rank = "strategy.lora.rank"
    config = quick_config({"sweep": {"rank": {rank: [2, 4, 8]}}, "strategies": ["vanilla", "shared_lora"]})
    folders = {}
    for run in planned_runs(config)[:3]:  # vanilla, shared_lora at 2, shared_lora at 4
        folders[(run.strategy, run.swept.get(rank))] = run_strategy(run.config, run.strategy, order=run.order,
                                                                    seed=run.seed, progress=False)
    assert list(folders) == [("vanilla", None), ("shared_lora", 2), ("shared_lora", 4)]
    study = load_study(config)
    assert len(study.all_runs) == 3 and study.missing == [("shared_lora", "1", 0)]
    assert study.points() == [{rank: 2}, {rank: 4}]  # rank 8 has no run
    for read in (lambda: study.runs, lambda: table1(study)):
        message = error_of(read)
        assert "shared_lora at strategy.lora.rank=2 and strategy.lora.rank=4" in message
        assert "use study.at(point) or study.first_point()" in message
    for value in (2, 4):
        part = study.at({rank: value})
        assert sorted(run.run_dir for run in part.runs) == sorted([folders[("vanilla", None)],
                                                                  folders[("shared_lora", value)]])
        assert part.config.strategy.lora.rank == value and part.missing == []
        assert part.sweep_text() == f"strategy.lora.rank = {value} (of 2, 4, 8)"
    assert study.at({rank: 8}).missing == [("shared_lora", "1", 0)]
    assert [run.run_dir for run in study.at({rank: 8}).runs] == [folders[("vanilla", None)]]
    first = study.first_point()
    assert first.point == {rank: 2} and "Sweep point shown: strategy.lora.rank = 2 (of 2, 4, 8)" in first.describe()
    assert list(table1(first).index) == ["vanilla", "shared_lora"]
    assert list(table1_comparison_by_point(study).index) == [
        "VANILLA", "SHARED LoRA (strategy.lora.rank = 2)", "SHARED LoRA (strategy.lora.rank = 4)"]

    plain = load_study(quick_config({"strategies": ["vanilla", "shared_lora"]}))  # the profile's rank, 4
    assert plain.points() == [{}] and plain.first_point() is plain and plain.sweep_text() == ""
    assert sorted(run.run_dir for run in plain.runs) == sorted([folders[("vanilla", None)],
                                                               folders[("shared_lora", 4)]])
    assert table1_comparison_by_point(plain).equals(table1_comparison(plain))


def test_grid_jobs_give_each_notebook_its_point_and_the_notebook_finds_the_planned_run(tmp_path):
    """A strategy notebook resolves its config from the job's parameters (`pages.notebook_config`):
    it must name the very run folder the grid planned, by_strategy settings and sweep point included."""
    from nbforget.batch.plan import NOTEBOOKS_DIR, strategy_jobs
    from nbforget.pages import notebook_config

    overrides = {"runs_dir": str(tmp_path / "runs"), "strategies": ["multi", "shared_lora"], "sweep": RANK_AND_DATA,
                 "by_strategy": {"lora": {"train": {"epochs": 3}}}}
    config = notebook_config(QUICK_PROFILE, overrides)
    jobs, done, missing = strategy_jobs(config, str(QUICK_PROFILE), overrides, book_dir=tmp_path / "book",
                                        notebooks_dir=NOTEBOOKS_DIR)
    assert (done, missing) == (0, [])
    assert [job.output.parent for job in jobs] == [run.store.path for run in planned_runs(config)]
    for job in jobs:
        strategy = job.source.stem
        own = notebook_config(job.parameters["params_file"], job.parameters["overrides"])
        assert run_store(own, strategy, job.parameters["order"], job.parameters["seed"]).path == job.output.parent
        assert strategy_config(own, strategy).train.epochs == (3 if strategy == "shared_lora" else 2)
    ranks = [job.parameters["overrides"].get("strategy", {}).get("lora", {}).get("rank") for job in jobs]
    assert ranks == [None, None, 2, 2, 4, 4]
    assert [bool(job.copies) for job in jobs] == [True, False, True, False, False, False]  # one page each
