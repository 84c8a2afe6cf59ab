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


def write_run(root, strategy, order_spec, matrix, *, seed=0, per_step=100, status="complete", profile="quick",
              orders=ORDERS, languages=LANGUAGES):
    order = orders[order_spec]
    # where the quick profile's run of these settings lives (orders, seeds and runs_dir are not
    # part of a run's identity, so the study's config below finds it)
    quick = load_config(REPO_ROOT / "params/profiles/quick.yaml",
                        {"runs_dir": str(root), "profile": profile, "languages": list(languages)})
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
              "model": {"name": "tiny"}, "train": {}, "languages": list(languages)}
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
    assert analysis.paper_row("multi_lora", 64).f1 == 73.79 and analysis.paper_row("multi_lora", 4).rank == 32
    assert analysis.paper_row("multi_lora", 256).method == "MULTI"
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


# --------------------------------------------------------------------------- strategy facts, module layout


def test_strategy_facts_come_from_the_registry(tmp_path):
    from nbforget.strategies import REGISTRY

    assert analysis.baseline_strategy() == "vanilla" and analysis.reference_strategy() == "multi"
    assert analysis.PAPER_NAMES == {name: cls.paper_name for name, cls in REGISTRY.items() if cls.paper_name}
    assert set(analysis.PAPER_NAMES) == {"multi", "mono", "vanilla", "shared_lora", "multi_lora", "nonshared_lora"}
    assert analysis.paper_method_strategy("SHARED LoRA") == "shared_lora"
    # MULTI LoRA is the paper's MULTI with a rank: its own name on pages, MULTI's rows with a rank
    # in Table 1, and neither the joint reference nor the method MULTI stands for
    assert analysis.PAPER_NAMES["multi_lora"] == "MULTI" and analysis.paper_method_strategy("MULTI") == "multi"
    assert analysis.display_name("multi_lora") == "MULTI LoRA" and analysis.display_name("multi") == "MULTI"
    assert analysis.paper_method_strategy("ADAPTER SOUP") is None
    assert analysis.display_name("family_experts") == "FAMILY EXPERTS" and analysis.display_name("l2sp") == "L2-SP"
    assert analysis.display_name("nonshared_lora") == "NON-SHARED LoRA"
    assert analysis.display_name("not_registered") == "not_registered"


@pytest.mark.parametrize("strategy, experts, copies", [
    ("vanilla", "language", 1), ("mono", "language", 3), ("family_experts", "language", 2),
    ("merge", "language", 3), ("merge", "family", 2), ("not_registered", "language", 1)])
def test_distinct_parameters_count_the_copies_the_strategy_keeps(strategy, experts, copies):
    # en-US and ru-RU are Indo-European, th-TH Tai-Kadai: two families, three languages
    run = analysis.RunRecord(
        run_dir=REPO_ROOT, strategy=strategy, order_spec="1", seed=0, order=tuple(LANGUAGES), trained=tuple(LANGUAGES),
        matrix=np.eye(3), base=None, result={"trainable_parameters": {"max_per_step": 70}}, drift=pd.DataFrame(),
        config={"strategy": {"merge": {"experts": experts}}})
    assert analysis.distinct_parameters(run) == 70 * copies


def test_analysis_modules_import_only_downward_and_at_the_top():
    """paper < study < tables < prose < held_out < groups < versus_paper < base_models; nothing from batch/, publish/,
    pages or cli; plots does not depend on analysis."""
    import ast

    layers = ["paper", "study", "tables", "prose", "held_out", "groups", "versus_paper", "base_models"]
    folder = REPO_ROOT / "src" / "nbforget" / "analysis"
    assert sorted(path.stem for path in folder.glob("*.py")) == sorted(layers + ["__init__"])
    for index, layer in enumerate(layers):
        tree = ast.parse((folder / f"{layer}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        own = {name.split(".")[2] for name in imported if name.startswith("nbforget.analysis.")}
        assert own <= set(layers[:index]), f"analysis/{layer}.py imports {own - set(layers[:index])}"
        for forbidden in ("nbforget.batch", "nbforget.publish", "nbforget.pages", "nbforget.cli"):
            assert not any(name.startswith(forbidden) for name in imported), f"analysis/{layer}.py imports {forbidden}"
        nested = [node for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
                  for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert not nested, f"analysis/{layer}.py imports inside a function (line {nested[0].lineno})"
    plots = ast.parse((REPO_ROOT / "src" / "nbforget" / "plots.py").read_text())
    assert not [node for node in ast.walk(plots) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("nbforget.analysis")], "plots imports analysis"
    assert set(analysis.__all__) <= set(dir(analysis))


def test_run_status_reads_a_folder_found_on_disk(study):
    from nbforget.runs import run_status

    config = study.config
    assert run_status(run_store(config, "vanilla", 1, 0).path) == "complete"
    assert run_status(run_store(config, "shared_lora", 1, 0).path) == "running"
    assert run_status(run_store(config, "vanilla", 1, 0).path.parent / "seed-9-nothing") == "absent"


# --------------------------------------------------------------------------- the paper's claims, checked

# A second study whose languages the paper names: en-US and de-DE (Latin script, Germanic), zh-CN
# (Han script, Sino-Tibetan); all three are Joshi class 5 (high vitality). One order, VANILLA only.
PAPER_LANGUAGES = ["en-US", "de-DE", "zh-CN"]
PAPER_ORDER = {1: ["en-US", "de-DE", "zh-CN"]}
# P = average over seen languages = [0.8, 0.825, 0.6]; training de-DE raised en-US (shift +0.05),
# training zh-CN lowered both (shift 0.55 - 0.825 = -0.275).
PAPER_MATRIX = [[0.8, 0.2, 0.1], [0.85, 0.8, 0.2], [0.5, 0.6, 0.7]]


@pytest.fixture
def paper_languages_study(tmp_path):
    runs = tmp_path / "paper-runs"
    write_run(runs, "vanilla", 1, PAPER_MATRIX, orders=PAPER_ORDER, languages=PAPER_LANGUAGES)
    config = load_config(REPO_ROOT / "params/profiles/quick.yaml",
                         {"runs_dir": str(runs), "languages": PAPER_LANGUAGES, "orders": [1],
                          "strategies": ["vanilla", "multi"]})
    return analysis.load_study(config)


def checked(checks, check, strategy=None):
    rows = checks[(checks["check"] == check) & ((checks["strategy"] == strategy) if strategy else True)]
    assert len(rows) == 1, f"{check}: {len(rows)} rows"
    return rows.iloc[0]


def test_claim_checks_on_the_three_language_study(study):
    checks = analysis.claim_checks(study)
    assert list(checks.columns) == ["check", "topic", "strategy", "claim", "paper", "ours", "agrees", "sentence"]
    # Table 1: finals MULTI 0.85 > MONO 0.8 > VANILLA 0.656 (EWC 0.667 is not in the paper), as in the paper
    row = checked(checks, "ranking")
    assert row["ours"] == "3 of 3 pairs as in the paper" and row["agrees"] is True
    assert row["paper"] == "MULTI > MULTI LoRA > MONO > NON-SHARED LoRA > VANILLA > SHARED LoRA"  # r = 32 rows
    assert checked(checks, "reference_best")["ours"] == "rank 1" and checked(checks, "reference_best")["agrees"]
    # Vitality (en-US, ru-RU high; th-TH mid): mid is best and high worst for VANILLA and EWC; MULTI
    # (0.85 both) and MONO (0.8 everywhere) tie, so 2 of 4 strategies: not more than half.
    assert checked(checks, "vitality_best_final")["ours"] == "in 2 of 4"
    assert checked(checks, "vitality_best_final")["agrees"] is False
    assert checked(checks, "vitality_worst_final")["agrees"] is False
    # Table 2: VANILLA's CBT over the orders, (-0.3 - 0.25 - 0.3) / 3
    row = checked(checks, "baseline_forgets")
    assert row["ours"] == f"{(-0.3 - 0.25 - 0.3) / 3:+.3f}" and row["paper"] == "-0.08" and row["agrees"] is True
    row = checked(checks, "shared_lora_forgets_more")  # its run is not complete
    assert row["agrees"] is None and row["ours"] == "not both run"
    # Figure 2: P falls from 0.9, 0.8, 0.7 to 2/3, 2/3, 0.633 over the three orders
    drop = np.mean([0.9 - 2 / 3, 0.8 - 2 / 3, 0.7 - 1.9 / 3])
    row = checked(checks, "baseline_average_falls")
    assert row["ours"] == f"change {-drop:+.3f}" and row["agrees"] is True
    # Figures 3 and 5 name languages these runs do not have
    for check in ("most_destructive", "best_donor", "forgetting_languages", "robust_receivers"):
        assert checked(checks, check)["agrees"] is None, check
    assert "not among these languages" in checked(checks, "most_destructive")["ours"]
    # Script, on VANILLA: non-Latin (ru-RU, th-TH) minus Latin (en-US), per order, then the mean.
    # Forgetting: order 1 0.3 - 0.3, random:1 0.3 - 0.2, random:2 undefined (en-US trained last).
    row = checked(checks, "script_forgetting")
    assert row["strategy"] == "vanilla" and row["ours"].startswith(f"{0.05:+.3f} [") and row["agrees"] is True
    # MBT averaged over hops: random:1 -0.1083 - (-0.05), random:2 0 - (-0.0667): positive, the paper negative
    assert checked(checks, "script_mbt")["ours"].startswith(f"{(-0.065 / 0.6 + 0.05 + 0.2 / 3) / 2:+.3f}")
    assert checked(checks, "script_mbt")["agrees"] is False
    # MFT: random:1 -0.0833 - (-0.0917), random:2 -0.0333 - (-0.0667)
    assert checked(checks, "script_mft")["ours"].startswith(f"{(0.025 / 3 + 0.1 / 3) / 2:+.3f}")
    assert checked(checks, "script_mft")["agrees"] is False
    # Family: no language of the distant families, nothing to compare
    for check in ("family_mbt", "family_mft", "family_forgetting"):
        row = checked(checks, check)
        assert row["agrees"] is None and row["ours"].startswith("no language in Sino-Tibetan"), check
    # Vitality MBT per bucket over orders: high [-0.15, -0.0792, -0.0667], mid [-0.1583, 0]: high lowest
    assert checked(checks, "vitality_mbt")["ours"] == "lowest: high" and checked(checks, "vitality_mbt")["agrees"]
    # MFT high minus mid: order 1 -0.1917 - (-0.0833), random:2 -0.0667 - (-0.0333)
    row = checked(checks, "vitality_mft")
    assert row["ours"].startswith(f"{(-0.65 / 6 - 0.1 / 3) / 2:+.3f} [") and row["agrees"] is True
    assert "these runs give" in row["sentence"] and row["sentence"].endswith("; agrees.")


def test_claim_checks_on_the_languages_the_paper_names(paper_languages_study):
    checks = analysis.claim_checks(paper_languages_study)
    assert checked(checks, "most_destructive")["ours"] == "rank 1 of 2"  # zh-CN -0.275, de-DE +0.05
    assert checked(checks, "most_destructive")["agrees"] is True
    assert checked(checks, "best_donor")["agrees"] is True
    row = checked(checks, "forgetting_languages")  # MBT: zh-CN -0.2125, de-DE +0.025
    assert row["ours"] == "1 of 1 in the lower half" and row["agrees"] is True
    assert checked(checks, "robust_receivers")["agrees"] is None  # none of nb-NO, ca-ES, pt-PT, el-GR
    # Germanic (en-US, de-DE) minus Sino-Tibetan (zh-CN): MBT 0.025 + 0.2125, MFT -0.0875 + 0.225
    # (one order: the bare difference, without an interval)
    assert float(checked(checks, "family_mbt")["ours"]) == pytest.approx(0.2375, abs=6e-4)
    assert float(checked(checks, "family_mft")["ours"]) == pytest.approx(0.1375, abs=6e-4)
    assert checked(checks, "family_mbt")["agrees"] and checked(checks, "family_mft")["agrees"]
    assert checked(checks, "family_forgetting")["agrees"] is None  # zh-CN, trained last, has no forgetting
    assert float(checked(checks, "script_mbt")["ours"]) == pytest.approx(-0.2375, abs=6e-4)
    assert checked(checks, "script_mbt")["agrees"]
    # all three languages are high vitality: no second bucket
    assert checked(checks, "vitality_mbt")["agrees"] is None and checked(checks, "vitality_mft")["agrees"] is None
    assert checked(checks, "vitality_best_final")["ours"] == "fewer than two vitality buckets with languages"
    # no MULTI run and a single strategy of the paper
    assert checked(checks, "ranking")["agrees"] is None and checked(checks, "reference_best")["agrees"] is None
    assert checked(checks, "baseline_forgets")["ours"] == f"{-0.25:+.3f}"  # (0.5 - 0.8 + 0.6 - 0.8) / 2
    assert checked(checks, "baseline_average_falls")["ours"] == f"change {-0.2:+.3f}"  # P: 0.8 -> 0.6


def test_claim_checks_keep_every_claim_when_nothing_can_be_checked(tmp_path):
    config = load_config(REPO_ROOT / "params/profiles/quick.yaml", {"runs_dir": str(tmp_path / "none")})
    checks = analysis.claim_checks(analysis.load_study(config))
    assert checks["agrees"].isna().all()
    assert {"ranking", "baseline_forgets", "most_destructive", "script_mbt", "family_forgetting",
            "vitality_mft"} <= set(checks["check"])
    assert analysis.claims_summary(checks) == "None of these claims can be checked with these runs and languages."
    assert set(analysis.claim_table(checks)["agreement"]) == {"not measurable here"}


def test_claim_checks_for_several_strategies_and_their_summary(study):
    checks = analysis.claim_checks(study, strategies=["vanilla", "ewc"])
    assert len(checks[checks["check"] == "script_mbt"]) == 2
    assert checked(checks, "vitality_mbt", "ewc")["claim"] == "high vitality has the most negative MBT (EWC)"
    vitality = checks[checks["topic"] == "vitality"]
    verdicts = [agrees for agrees in vitality["agrees"] if agrees is not None]
    summary = analysis.claims_summary(vitality, pattern="vitality pattern")
    assert summary.startswith(f"{sum(verdicts)} of {len(verdicts)} checkable claims agree with the paper")
    table = analysis.claim_table(vitality)
    assert list(table.columns) == ["the paper", "here", "agreement"] and len(table) == len(vitality)


def test_contrast_table_and_text(study, paper_languages_study):
    measures = analysis.language_measures(study)
    table = analysis.contrast_table(measures, analysis.SCRIPT_CONTRAST, ["vanilla"])
    assert list(table.columns) == ["non-Latin minus Latin", "the paper", "agreement"]
    assert table.loc[("VANILLA", "forgetting"), "agreement"] == "agrees"
    assert table.loc[("VANILLA", "MBT"), "the paper"] == "negative"
    assert table.loc[("VANILLA", "MBT"), "agreement"] == "disagrees"
    text = analysis.contrast_text(measures, analysis.SCRIPT_CONTRAST, ["vanilla"], focus="vanilla")
    assert text.startswith("For VANILLA, the setting of the paper's heatmaps, non-Latin minus Latin: MBT +0.004")
    assert ("1 of 3 measurable differences have the sign the paper reports: its script contrast is not "
            "reproduced") in text
    family = analysis.contrast_text(measures, analysis.FAMILY_CONTRAST, ["vanilla"])
    assert family.startswith("The profile has no language in *Sino-Tibetan, Austro-Asiatic or Afro-Asiatic*")
    assert family.endswith("None of the differences is measurable with these languages and runs.")
    assert analysis.contrast_table(measures, analysis.SCRIPT_CONTRAST, []).empty
    other = analysis.language_measures(paper_languages_study)
    text = analysis.contrast_text(other, analysis.FAMILY_CONTRAST, ["vanilla"])
    assert "2 of 2 measurable differences" in text and "its family contrast is visible" in text


def test_overview_sentences(study, paper_languages_study):
    ranking = analysis.ranking_text(study)
    assert ranking.startswith("Ranked by final average here: MULTI (0.850), MONO (0.800), EWC (0.667), "
                              "VANILLA (0.656).")
    assert "Of the 3 pairs of strategies the paper also ran, 3 are ordered as in its Table 1 (mostly the" in ranking
    assert "MULTI is the best strategy here (paper: the best, 0.750)." in ranking
    assert ("Best vitality bucket per strategy here: MULTI none (a tie), MONO none (a tie), VANILLA mid, EWC mid. "
            "The paper finds mid vitality best in every method; here mid is best for 2 of 4 (no language in the low "
            "bucket).") in ranking
    transfer = analysis.transfer_text(study)
    assert transfer.startswith("VANILLA's CBT here is -0.283 (paper: -0.08): forgetting is visible at this scale.")
    assert "Of the 1 strategies beyond the paper's, none keeps a CBT above VANILLA's" in transfer  # EWC -0.3
    curves = analysis.average_over_time_text(study)
    assert "MONO stays level" in curves and "EWC loses 0.233" in curves
    assert "VANILLA's drop of 0.144 is within the paper's 0.10 to 0.15." in curves
    assert curves.endswith("MULTI's level is 0.850; 3 of 3 sequential strategies end below it.")
    # shifts over orders: en-US -0.2, th-TH -0.2 (a tie for the most destructive), ru-RU -0.175
    shift = analysis.shift_text(study, "vanilla")
    assert "the most destructive language here is not one language (a tie) and the best donor ru-RU (-0.175" in shift
    assert "The paper's most destructive, zh-CN, is not among these languages." in shift
    assert analysis.shift_text(study, None) == "" and analysis.shift_text(study, "multi") == ""
    named = analysis.shift_text(paper_languages_study, "vanilla")
    assert "most destructive language here is zh-CN (-0.275, from 1 order without an interval)" in named
    assert "The paper's best donor, de-DE, ranks 2 of 2 from the most destructive here (the same conclusion)." in named
    hops = analysis.hop_text(paper_languages_study, "vanilla")
    # MBT over hops: zh-CN (-0.225 - 0.2) / 2, de-DE +0.025; MFT: zh-CN -0.225, de-DE (0.025 - 0.2) / 2
    assert hops.startswith("By mean MBT over h, the weakest receiver here is zh-CN (-0.21")
    assert "the strongest de-DE (+0.025)." in hops and "the weakest donor here is zh-CN (-0.225)" in hops
    assert "Of the paper's most forgetting languages present here (zh-CN), 1 fall in the lower half by MBT." in hops
    assert "robust receivers" not in hops


def test_vitality_sentences_and_table(study):
    measures = analysis.language_measures(study)
    text = analysis.vitality_text(study)
    assert text.startswith("Best bucket per strategy here: MULTI none (a tie), MONO none (a tie), VANILLA mid, "
                           "EWC mid.")
    assert "here it is best for 2 of 4 strategies" in text and "here high is worst for 2 of 4." in text
    assert analysis.vitality_transfer_text(measures, ["vanilla"]) == "VANILLA: lowest MBT in the high bucket."
    table = analysis.vitality_comparison(study, measures)
    assert table.loc["VANILLA", ("ours", "high")].startswith("0.650 [")  # (0.55 + 0.75 + 0.65) / 3
    assert table.loc["VANILLA", ("ours", "low")] == "no language"
    assert table.loc["VANILLA", ("paper", "high")] == "0.635"  # 63.46 / 100
    assert table.loc["EWC", ("paper", "mid")] == "not in the paper"


def test_group_counts_and_the_indo_european_split(study):
    measures = analysis.language_measures(study)
    assert analysis.group_counts_text(measures, "latin", groups=analysis.SCRIPT_GROUPS, label="script group") == (
        "Languages per script group (2 groups): Latin (1), non-Latin (2). One language only in Latin: a difference "
        "there is between single languages, not groups.")
    vitality = analysis.group_counts_text(measures, "vitality", groups=["low", "mid", "high"])
    assert "low (0), mid (1), high (2)" in vitality
    assert "No language in low: an empty group cannot be compared." in vitality
    assert analysis.group_counts_text(measures.iloc[0:0], "family") == "No complete run yet: no languages to show."
    table = analysis.indo_european_table(measures, ["vanilla", "multi"])
    # final score, Indo-European (en-US, ru-RU) minus Tai-Kadai (th-TH): -0.35, +0.25, +0.05 over the orders
    assert table.loc["VANILLA", "final score"].startswith(f"{(-0.35 + 0.25 + 0.05) / 3:+.3f} [")
    assert list(table.index) == ["VANILLA", "MULTI"] and table.loc["MULTI", "MBT, mean over h"] == "n/a"
    assert analysis.FAMILY_STRONG == "Romance or Germanic"
    assert analysis.paper_family_group("Germanic", "Indo-European") == analysis.FAMILY_STRONG
    assert analysis.paper_family_group("Chinese", "Sino-Tibetan") == analysis.FAMILY_POOR


def test_figure5_claims_read_halves_of_the_languages_ranked_by_mbt(tmp_path):
    # en-US, then zh-CN, then nb-NO: P = [0.8, 0.8, 0.5]; MBT over hops zh-CN 0, nb-NO -0.3. The
    # paper's robust receiver ranks lowest and its forgetting language highest: both disagree.
    languages, order = ["en-US", "zh-CN", "nb-NO"], {1: ["en-US", "zh-CN", "nb-NO"]}
    write_run(tmp_path, "vanilla", 1, [[0.8, 0.2, 0.2], [0.8, 0.8, 0.2], [0.4, 0.4, 0.7]], orders=order,
              languages=languages)
    config = load_config(REPO_ROOT / "params/profiles/quick.yaml",
                         {"runs_dir": str(tmp_path), "languages": languages, "orders": [1], "strategies": ["vanilla"]})
    checks = analysis.claim_checks(analysis.load_study(config))
    assert checked(checks, "robust_receivers")["ours"] == "0 of 1 in the upper half"
    assert checked(checks, "robust_receivers")["agrees"] is False
    assert checked(checks, "forgetting_languages")["ours"] == "0 of 1 in the lower half"
    assert checked(checks, "forgetting_languages")["agrees"] is False


def test_a_difference_of_zero_does_not_have_the_papers_sign(study):
    # MONO scores every language 0.8 once trained: forgetting and MBT are zero for every language
    table = analysis.contrast_table(analysis.language_measures(study), analysis.SCRIPT_CONTRAST, ["mono"])
    assert table.loc[("MONO", "forgetting"), "non-Latin minus Latin"] == "+0.000 [+0.000, +0.000]"
    assert set(table["agreement"]) == {"disagrees"}


# --------------------------------------------------------------------------- sweep points


def test_an_unswept_study_is_its_own_single_point(study):
    assert study.points() == [{}]
    assert study.first_point() is study and study.at({}) is study
    assert study.sweep_text() == "" and "Sweep point" not in study.describe()
    assert len(study.runs) == len(study.all_runs) == 10
    assert "not swept by profile 'quick'" in str(pytest.raises(NbforgetError, study.at,
                                                                {"strategy.lora.rank": 4}).value)


def two_rank_study(study):
    """The hand-made runs as a study of a rank sweep: VANILLA (reads no rank) and its runs again as
    SHARED LoRA at ranks 2 and 8 (not 4: the sweep's declared order comes first), 16 never run."""
    import dataclasses

    config = study.config.with_overrides({"sweep": {"rank": {"strategy.lora.rank": [2, 4, 8, 16]}}})
    runs = list(study.of("vanilla"))
    for rank, offset in ((8, 0.1), (2, 0.0)):
        runs += [dataclasses.replace(run, strategy="shared_lora", matrix=run.matrix - offset,
                                     swept={"strategy.lora.rank": rank}) for run in study.of("vanilla")]
    missing = [("shared_lora", "1", 0), ("shared_lora", "1", 0)]
    return analysis.Study(config, runs, missing,
                          missing_swept=[{"strategy.lora.rank": 4}, {"strategy.lora.rank": 16}])


def test_a_study_of_two_sweep_points_refuses_to_mix_them(study):
    swept = two_rank_study(study)
    assert swept.points() == [{"strategy.lora.rank": 2}, {"strategy.lora.rank": 8}]  # declared order
    for read in (lambda: swept.runs, lambda: swept.of("shared_lora"), lambda: analysis.table1(swept),
                 lambda: analysis.table2(swept), lambda: analysis.average_over_time(swept)):
        message = str(pytest.raises(NbforgetError, read).value)
        assert "shared_lora at strategy.lora.rank=2 and strategy.lora.rank=8" in message
        assert "use study.at(point) or study.first_point()" in message
    assert len(swept.of("vanilla")) == 3 and len(swept.all_runs) == 9 and len(analysis.run_metrics(swept)) == 9
    assert "Runs of 2 sweep points: strategy.lora.rank=2; strategy.lora.rank=8" in swept.describe()

    for rank, offset in ((2, 0.0), (8, 0.1)):
        part = swept.at({"strategy.lora.rank": rank})
        assert sorted((run.strategy, run.swept.get("strategy.lora.rank")) for run in part.runs) == \
            [("shared_lora", rank)] * 3 + [("vanilla", None)] * 3  # VANILLA is in every point
        assert part.config.strategy.lora.rank == rank and part.point == {"strategy.lora.rank": rank}
        assert part.sweep_text() == f"strategy.lora.rank = {rank} (of 2, 4, 8, 16)"
        assert part.missing == [] and part.points() == [{}]
        expected = analysis.table1(analysis.Study(study.config, study.of("vanilla"), [])).loc["vanilla", "final_average"]
        assert analysis.table1(part).loc["shared_lora", "final_average"] == pytest.approx(expected - offset)
    first = swept.first_point()
    assert first.point == {"strategy.lora.rank": 2}
    assert "Sweep point shown: strategy.lora.rank = 2 (of 2, 4, 8, 16)" in first.describe()
    unrun = swept.at({"strategy.lora.rank": 4})
    assert [run.strategy for run in unrun.runs] == ["vanilla"] * 3 and unrun.missing == [("shared_lora", "1", 0)]
    assert "shared_lora" in unrun.missing_strategies and "shared_lora" not in first.missing_strategies
    assert "not a value of the sweep; its values: 2, 4, 8, 16" in str(
        pytest.raises(NbforgetError, swept.at, {"strategy.lora.rank": 3}).value)

    table = analysis.table1_comparison_by_point(swept)
    assert list(table.index) == ["VANILLA", "SHARED LoRA (strategy.lora.rank = 2)",
                                 "SHARED LoRA (strategy.lora.rank = 8)"]
    for rank in (2, 8):
        own = analysis.table1_comparison(swept.at({"strategy.lora.rank": rank}))
        assert table.loc[f"SHARED LoRA (strategy.lora.rank = {rank})"].equals(own.loc["SHARED LoRA"])
    assert analysis.table1_comparison_by_point(study).equals(analysis.table1_comparison(study))


# --------------------------------------------------------------------------- base models (Figure 4)

MODEL_SWEEP = {"model": {"model.name": ["tiny", "e5-small"], "train.learning_rate": [0.001, 0.0001]}}


def two_model_study(study):
    """The hand-made runs as a study of a model sweep: VANILLA and MULTI on both models (e5-small's
    VANILLA 0.1 higher in every cell, in two of the three orders; its MULTI 0.05 lower), MONO on
    the tiny model only."""
    import dataclasses

    config = study.config.with_overrides({"sweep": MODEL_SWEEP})
    tiny = {"model.name": "tiny", "train.learning_rate": 0.001}
    e5 = {"model.name": "e5-small", "train.learning_rate": 0.0001}
    runs = [dataclasses.replace(run, swept=dict(tiny)) for name in ("vanilla", "multi", "mono") for run in study.of(name)]
    runs += [dataclasses.replace(run, matrix=run.matrix + 0.1, swept=dict(e5)) for run in study.of("vanilla")
             if run.order_spec != order_label("random:2")]
    runs += [dataclasses.replace(run, matrix=run.matrix - 0.05, swept=dict(e5)) for run in study.of("multi")]
    return analysis.Study(config, runs, [])


def test_model_comparison_has_a_row_per_strategy_and_model(study):
    swept = two_model_study(study)
    assert analysis.model_axis(swept) == MODEL_SWEEP["model"]
    assert analysis.model_points(swept) == [{"model.name": "tiny", "train.learning_rate": 0.001},
                                            {"model.name": "e5-small", "train.learning_rate": 0.0001}]
    frame = analysis.model_comparison(swept)
    assert list(frame.columns) == analysis.MODEL_COLUMNS
    assert list(zip(frame["strategy"], frame["model"])) == [
        ("multi", "tiny"), ("multi", "e5-small"), ("mono", "tiny"), ("vanilla", "tiny"), ("vanilla", "e5-small")]
    rows = frame.set_index(["strategy", "model"])
    finals = {spec: np.mean(matrix[-1]) for spec, matrix in VANILLA.items()}
    assert rows.loc[("vanilla", "tiny"), "final_average"] == pytest.approx(np.mean(list(finals.values())))
    assert rows.loc[("vanilla", "e5-small"), "final_average"] == pytest.approx(
        np.mean([finals[1], finals["random:1"]]) + 0.1)
    cbts = [metrics.cbt(np.array(VANILLA[spec])) for spec in (1, "random:1")]
    assert rows.loc[("vanilla", "e5-small"), "cbt"] == pytest.approx(np.mean(cbts))  # a shift keeps CBT
    assert (rows.loc[("vanilla", "e5-small"), "n_runs"], rows.loc[("vanilla", "e5-small"), "n_orders"]) == (2, 2)
    assert rows.loc[("vanilla", "tiny"), "n_runs"] == 3
    assert rows.loc[("multi", "e5-small"), "final_average"] == pytest.approx(0.80)
    assert np.isnan(rows.loc[("multi", "e5-small"), "cbt"])  # joint training: no CBT
    assert rows.loc[("vanilla", "tiny"), "chance"] == pytest.approx(1 / 7)
    assert rows.loc[("vanilla", "e5-small"), "point"] == "model.name=e5-small, train.learning_rate=0.0001"

    table = analysis.model_table(frame)
    assert table.loc[("VANILLA", "e5-small"), "runs (orders)"] == "2 (2)"
    assert table.loc[("MULTI", "tiny"), "CBT"] == "n/a"

    text = analysis.model_comparison_text(swept)
    assert "**VANILLA**: `e5-small` scores higher" in text
    assert "**MULTI**: `tiny` scores higher, final average 0.850" in text and "gap of 0.050" in text
    assert "MONO (`tiny` only)" in text
    assert "rank the same way under every model (`tiny`: MULTI > VANILLA; `e5-small`: MULTI > VANILLA)" in text
    assert "Forgetting shows under every model" in text
    assert "XLM-R base and E5" in text and "not checked here" in text
    tied = frame.copy()
    tied.loc[(tied["strategy"] == "vanilla") & (tied["model"] == "tiny"), "final_average"] = 0.85
    text = analysis.model_comparison_text(swept, tied)
    assert "rank differently under the models (`tiny`: MULTI = VANILLA; `e5-small`: MULTI > VANILLA)" in text
    assert "`tiny` and `e5-small` models" in analysis.model_scale_statement(swept)
    assert "models `tiny`, `e5-small` (swept)" in swept.describe()


def test_model_comparison_is_empty_without_a_model_sweep(study):
    frame = analysis.model_comparison(study)
    assert frame.empty and list(frame.columns) == analysis.MODEL_COLUMNS
    assert analysis.model_axis(study) is None and analysis.model_points(study) == []
    text = analysis.model_comparison_text(study)
    assert text == analysis.no_model_sweep_text(study)
    assert "does not sweep `model.name`" in text and analysis.MODEL_SWEEP_EXAMPLE in text
    assert analysis.model_table(frame).empty
    # a swept model pinned with --set is one model again
    pinned = two_model_study(study)
    pinned = analysis.Study(pinned.config.with_overrides({"model": {"name": "tiny"}}), pinned.all_runs, [])
    assert analysis.model_comparison(pinned).empty and "does not sweep" in analysis.model_comparison_text(pinned)
    # a model sweep without runs says so
    unrun = analysis.Study(two_model_study(study).config, [], [])
    assert analysis.model_comparison(unrun).empty
    assert "No complete run of any model point yet" in analysis.model_comparison_text(unrun)


def test_model_comparison_reads_another_axis_at_its_first_point(study):
    import dataclasses

    swept = two_model_study(study)
    config = swept.config.with_overrides({"sweep": {**MODEL_SWEEP, "rank": {"strategy.lora.rank": [2, 8]}}})
    runs = list(swept.all_runs)
    for rank, offset in ((2, 0.0), (8, -0.1)):
        runs += [dataclasses.replace(run, strategy="shared_lora", matrix=run.matrix + offset,
                                     swept={**run.swept, "strategy.lora.rank": rank})
                 for run in swept.all_runs if run.strategy == "vanilla"]
    frame = analysis.model_comparison(analysis.Study(config, runs, []))
    rows = frame.set_index(["strategy", "model"])
    assert rows.loc[("shared_lora", "tiny"), "final_average"] == pytest.approx(rows.loc[("vanilla", "tiny"), "final_average"])
    assert set(frame["other_point"]) == {"strategy.lora.rank=2"}


def test_the_model_sections_are_left_out_of_a_page_whose_profile_sweeps_no_model():
    from nbforget.batch.notebooks import OPTIONAL_SECTIONS, load_source, without_absent_sections

    assert "model-sweep" in OPTIONAL_SECTIONS
    path = REPO_ROOT / "notebooks" / "analyses" / "models.py"
    before = load_source(path)
    tagged = [cell for cell in before.cells if "model-sweep" in cell.metadata.get("tags", [])]
    assert len(tagged) == 4 and any("figure" in cell.metadata.get("mystnb", {}) for cell in tagged)
    parameters = {"params_file": "params/profiles/quick.yaml", "overrides": {}}
    dropped = without_absent_sections(load_source(path), parameters)
    assert len(dropped.cells) == len(before.cells) - len(tagged)
    assert "model_comparison_text" in "\n".join(cell.source for cell in dropped.cells)  # says why
    kept = without_absent_sections(load_source(path), {**parameters, "overrides": {"sweep": MODEL_SWEEP}})
    assert len(kept.cells) == len(before.cells)
    kept = without_absent_sections(load_source(path), {"params_file": "params/profiles/two-models.yaml"})
    assert len(kept.cells) == len(before.cells)
    config = load_config(REPO_ROOT / "params/profiles/two-models.yaml")
    assert config.strategies == ["vanilla", "multi"] and config.languages == LANGUAGES
    assert config.sweep["model"]["model.name"] == ["tiny", "e5-small"]
