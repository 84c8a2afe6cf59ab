"""nbforget.analysis and nbforget.pages on hand-made run directories (no training).

Runs are written the way `nbforget.runs` writes them (config.yaml, scores.csv, result.json,
drift.csv, status), with score matrices chosen so every table can be checked against the metric
functions by hand.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from nbforget import NbforgetError, analysis, metrics
from nbforget.config import REPO_ROOT, load_config
from nbforget.pages import RUNS_DIR_ENV, notebook_config, read_summary, record_summary, versions_table
from nbforget.runs import order_label
from nbforget.strategies import run_store

LANGUAGES = ["en-US", "ru-RU", "th-TH"]
ORDERS = {1: ["en-US", "ru-RU", "th-TH"], "random:1": ["th-TH", "en-US", "ru-RU"], "random:2": ["ru-RU", "th-TH", "en-US"]}
VANILLA = {
    1: [[0.9, 0.3, 0.2], [0.7, 0.8, 0.3], [0.6, 0.5, 0.9]],
    "random:1": [[0.8, 0.2, 0.1], [0.6, 0.9, 0.2], [0.5, 0.7, 0.8]],
    "random:2": [[0.7, 0.1, 0.2], [0.5, 0.9, 0.3], [0.4, 0.6, 0.9]],
}


def write_run(root, strategy, order_spec, matrix, *, seed=0, per_step=100, status="complete", profile="quick"):
    order = ORDERS[order_spec]
    # where the quick profile's run of these settings lives (orders, seeds and runs_dir are not
    # part of a run's identity, so the study's config below finds it)
    quick = load_config(REPO_ROOT / "params/profiles/quick.yaml", {"runs_dir": str(root), "profile": profile})
    folder = run_store(quick, strategy, order_spec, seed).path
    folder.mkdir(parents=True)
    matrix = np.asarray(matrix, dtype=float)
    joint = matrix.shape[0] == 1
    rows = [{"order": str(order_spec), "step": -1, "trained_language": "", "eval_language": language,
             "split": "test", "metric": "accuracy", "value": 0.1} for language in order]
    for step in range(matrix.shape[0]):
        trained = "+".join(order) if joint else order[step]
        rows += [{"order": str(order_spec), "step": step, "trained_language": trained, "eval_language": language,
                  "split": "test", "metric": "accuracy", "value": matrix[step, j]} for j, language in enumerate(order)]
    pd.DataFrame(rows).to_csv(folder / "scores.csv", index=False)
    config = {"profile": profile, "strategy": {"merge": {"experts": "language"}}, "dataset": "sib200",
              "model": {"name": "tiny"}, "train": {}, "languages": LANGUAGES}
    (folder / "config.yaml").write_text(yaml.safe_dump({"strategy": strategy, "order_spec": order_spec, "order": order,
                                                        "seed": seed, "config": config}))
    steps = ["all"] if joint else order
    result = {"metrics": {"metric": "accuracy", "chance": 1 / 7, "final_average": float(matrix[-1].mean())},
              "trainable_parameters": {"per_step": {s: per_step for s in steps}, "max_per_step": per_step,
                                       "total": per_step * len(steps)},
              "timings": {"seconds": 1.0}}
    (folder / "result.json").write_text(json.dumps(result))
    drift = pd.DataFrame([{"step": s, "layer": layer, "relative_drift": 0.01 * (s + 1)}
                          for s in range(matrix.shape[0]) for layer in ("embeddings", "layer.0")])
    drift.to_csv(folder / "drift.csv", index=False)
    (folder / "status").write_text(status + "\n")
    return folder


@pytest.fixture
def study(tmp_path):
    runs = tmp_path / "runs"
    for spec, matrix in VANILLA.items():
        write_run(runs, "vanilla", spec, matrix)
        write_run(runs, "mono", spec, np.tril(np.full((3, 3), 0.8)) + np.triu(np.full((3, 3), 0.2), 1), per_step=100)
        write_run(runs, "multi", spec, [[0.9, 0.85, 0.8]])
    write_run(runs, "ewc", 1, VANILLA[1])  # another strategy, outside the profile's list, one order
    write_run(runs, "shared_lora", 1, VANILLA[1], status="running")
    config = load_config(REPO_ROOT / "params/profiles/quick.yaml",
                         {"runs_dir": str(runs), "orders": list(ORDERS),
                          "strategies": ["multi", "mono", "vanilla", "shared_lora"]})
    return analysis.load_study(config)


def test_load_study_finds_complete_runs_and_names_what_is_missing(study):
    assert study.strategies == ["multi", "mono", "vanilla", "ewc"]
    assert study.missing_strategies == ["shared_lora"]
    assert len(study.of("vanilla")) == 3
    assert "No complete run for `shared_lora`" in study.describe()
    run = study.of("multi")[0]
    assert run.joint and not run.square and run.row_labels == ["all (joint)"]


def test_load_run_refuses_an_incomplete_run(study):
    folder = study.config.runs_path / "quick" / "shared_lora" / "order-1" / "seed-0"
    with pytest.raises(NbforgetError, match="not a complete run"):
        analysis.load_run(folder)


def test_run_summary_recomputes_the_metrics_of_the_matrix(study):
    run = next(r for r in study.of("vanilla") if r.order_spec == "1")
    summary = analysis.run_summary(run)
    matrix = np.array(VANILLA[1])
    assert summary["cbt"] == pytest.approx(metrics.cbt(matrix))
    assert summary["cft"] == pytest.approx(metrics.cft(matrix))
    assert summary["forgetting"] == pytest.approx(-metrics.cbt(matrix))
    assert summary["final_average"] == pytest.approx(matrix[-1].mean())
    assert summary["fwt"] == pytest.approx(metrics.fwt(matrix, [0.1, 0.1, 0.1]))
    joint = analysis.run_summary(study.of("multi")[0])
    assert np.isnan(joint["cbt"]) and joint["final_average"] == pytest.approx(0.85)
    table = analysis.summary_table(summary)
    assert table.loc["CBT", "value"] == f"{metrics.cbt(matrix):.3f}"


def test_table2_is_the_mean_and_bootstrap_interval_over_orders(study):
    table = analysis.table2(study)
    assert list(table.index) == ["mono", "vanilla", "ewc"]  # joint training has no CBT
    values = [metrics.cbt(np.array(m)) for m in VANILLA.values()]
    mean, low, high = metrics.bootstrap_ci(values)
    assert table.loc["vanilla", "cbt"] == pytest.approx(mean)
    assert (table.loc["vanilla", "cbt_low"], table.loc["vanilla", "cbt_high"]) == pytest.approx((low, high))
    assert table.loc["vanilla", "n_orders"] == 3
    assert table.loc["mono", "cbt"] == 0.0
    assert np.isnan(table.loc["ewc", "cbt_low"])  # one order: no interval


def test_table1_counts_parameters_as_the_paper_and_splits_by_vitality(study):
    table = analysis.table1(study)
    assert table.loc["mono", "params_distinct"] == 300  # one model per language
    assert table.loc["vanilla", "params_distinct"] == 100  # one model trained again and again
    # en-US and ru-RU are high vitality, th-TH mid; no low-vitality language in the profile
    finals = [np.array(VANILLA[spec])[-1] for spec in ORDERS]
    high = np.mean([np.mean([f[ORDERS[spec].index(l)] for l in ("en-US", "ru-RU")]) for spec, f in zip(ORDERS, finals)])
    assert table.loc["vanilla", "high"] == pytest.approx(high)
    assert np.isnan(table.loc["vanilla", "low"])
    comparison = analysis.table1_comparison(study)
    assert comparison.loc["MONO", ("paper", "params (M)")] == "14,458.27"
    assert comparison.loc["VANILLA", ("paper", "F1")] == "0.662"
    assert comparison.loc["EWC", ("paper", "method")] == "not in the paper"
    assert comparison.loc["VANILLA", ("ours", "low")] == "no language"


def test_average_over_time_has_a_level_for_joint_training(study):
    curves = analysis.average_over_time(study)
    vanilla = curves[(curves.strategy == "vanilla") & (curves.order == "1")]
    assert vanilla["value"].tolist() == pytest.approx(metrics.average_seen(np.array(VANILLA[1])).tolist())
    multi = curves[curves.strategy == "multi"]
    assert multi["joint"].all() and len(multi) == 3


def test_performance_shift_and_hops_over_orders(study):
    shift = analysis.performance_shift(study, "vanilla")
    matrices = [np.array(VANILLA[spec]) for spec in ORDERS]
    expected = metrics.per_language_shift(matrices, list(ORDERS.values()))
    pd.testing.assert_frame_equal(shift, expected)
    hops = analysis.hop_tables(study, "vanilla")
    assert list(hops["mbt"]["mean"].columns) == [0, 1, 2]
    assert analysis.performance_shift(study, "multi") is None


def test_language_measures_and_group_summaries(study):
    measures = analysis.language_measures(study)
    vanilla = measures[(measures.strategy == "vanilla") & (measures.order == "1")].set_index("language")
    matrix = np.array(VANILLA[1])
    assert vanilla.loc["en-US", "forgetting"] == pytest.approx(matrix[0, 0] - matrix[2, 0])
    assert np.isnan(vanilla.loc["th-TH", "forgetting"])  # trained last
    assert vanilla.loc["en-US", "latin"] == "Latin" and vanilla.loc["th-TH", "vitality"] == "mid"
    summary = analysis.group_summary(measures, "latin", "final", strategies=["vanilla"])
    per_order = measures[(measures.strategy == "vanilla") & (measures.latin == "non-Latin")].groupby("order")["final"].mean()
    row = summary.set_index("group").loc["non-Latin"]
    assert row["mean"] == pytest.approx(per_order.mean()) and row["n_orders"] == 3 and row["n_languages"] == 2
    difference = analysis.group_difference(measures, "latin", "final", "non-Latin", "Latin", strategy="vanilla")
    latin = measures[(measures.strategy == "vanilla") & (measures.latin == "Latin")].groupby("order")["final"].mean()
    assert difference["mean"] == pytest.approx((per_order - latin).mean())
    absent = analysis.group_difference(measures, "latin", "final", "Cyrillic", "Latin", strategy="vanilla")
    assert absent["n"] == 0 and np.isnan(absent["mean"])
    table = analysis.group_table(measures, "latin", ["final", "mbt_mean"], strategies=["vanilla"])
    assert "only en-US" in table.loc["VANILLA", ("final", "Latin")]


def test_paper_constants_are_the_papers():
    assert analysis.paper_row("multi").f1 == 75.03
    assert analysis.paper_row("shared_lora", 64).f1 == 61.26
    assert analysis.paper_row("shared_lora", 4).rank == 32  # closest reported: the smallest
    assert analysis.paper_row("ewc") is None
    assert analysis.PAPER_TABLE2[("VANILLA", None)] == (-0.08, 0.55)
    assert analysis.PAPER_FIGURE3["most_destructive"] == "zh-CN" and analysis.PAPER_FIGURE3["best_donor"] == "de-DE"
    table = analysis.paper_table1()
    assert table.loc[table.method == "MONO", "f1"].item() == pytest.approx(0.7298)
    assert analysis.ranking_agreement({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 3, "c": 2}) == (2, 3)


def test_format_interval():
    assert analysis.format_interval(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert analysis.format_interval(-0.1, n=1, signed=True) == "-0.100"
    assert analysis.format_interval(-0.1, n=1, signed=True, prose=True) == "-0.100, from 1 order without an interval"
    assert analysis.format_interval(0.5, 0.4, 0.6, prose=True) == "0.500, 95% interval 0.400 to 0.600"
    assert analysis.format_interval(float("nan")) == "n/a"


def test_runs_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    assert notebook_config("params/profiles/quick.yaml").runs_path == REPO_ROOT / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "from-env"))
    assert notebook_config("params/profiles/quick.yaml").runs_path == tmp_path / "from-env"
    assert notebook_config("params/profiles/quick.yaml", {"runs_dir": str(tmp_path / "o")}).runs_path == tmp_path / "o"
    assert notebook_config("params/profiles/quick.yaml", runs_dir=tmp_path / "p").runs_path == tmp_path / "p"


def test_params_file_resolves_from_another_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert notebook_config("params/profiles/quick.yaml").profile == "quick"


def test_summary_round_trip_and_versions(tmp_path):
    record_summary(tmp_path, {"cbt": np.float64(-0.25), "cft": float("nan"), "n": np.int64(3)})
    assert read_summary(tmp_path) == {"cbt": -0.25, "cft": None, "n": 3}
    table = versions_table(REPO_ROOT / "runs" / "quick")
    assert {"python", "nbforget", "torch", "transformers", "peft"} <= set(table.index)
    assert table.loc["run directory", "value"] == "runs/quick"


def test_pages_name_run_folders_inside_the_repository_relative_to_it(tmp_path):
    from nbforget.config import REPO_ROOT, display_path

    assert display_path(REPO_ROOT / "runs" / "embedded") == "runs/embedded"
    assert display_path(tmp_path / "runs") == str(tmp_path.resolve() / "runs")
