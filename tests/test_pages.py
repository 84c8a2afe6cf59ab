"""nbforget.pages' strategy-page functions, and the figure they add to nbforget.plots, on hand-made runs.

Run directories are written the way `nbforget.runs` writes them (config.yaml, scores.csv,
result.json with ``strategy_records``, drift.csv, status), with score matrices, drift and step
records chosen so every number a page states can be checked by hand. The tests that concern
strategies are table-driven over the registry (`nbforget.strategies.REGISTRY`).
"""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nbforget import NbforgetError, analysis, metrics, pages, plots  # noqa: E402
from nbforget.config import REPO_ROOT, load_config  # noqa: E402
from nbforget.pages import SECTIONS, SUMMARY_FILE  # noqa: E402
from nbforget.runs import order_label  # noqa: E402
from nbforget.strategies import REGISTRY, run_store  # noqa: E402

ORDER = ["en-US", "ru-RU", "th-TH"]
LAYERS = ["embeddings", "layer.0", "layer.1"]
MATRIX = [[0.9, 0.3, 0.2], [0.7, 0.8, 0.3], [0.6, 0.5, 0.9]]
JOINT = [[0.9, 0.85, 0.8]]


def write_run(root, strategy, matrix=MATRIX, *, records=None, drift=None, per_step=100, status="complete",
              order_spec=1, seed=0):
    """A run directory of `strategy`: `records` maps step labels to step records, `drift` maps
    layers to their relative drift after each step (default: 0.01 * (step + 1) for every layer)."""
    folder = run_store(config_for(root), strategy, order_spec, seed).path  # where the quick profile's run lives
    folder.mkdir(parents=True)
    matrix = np.asarray(matrix, dtype=float)
    labels = ["+".join(ORDER)] if matrix.shape[0] == 1 else ORDER[:matrix.shape[0]]
    rows = [{"order": str(order_spec), "step": -1, "trained_language": "", "eval_language": language,
             "split": "test", "metric": "accuracy", "value": 0.1} for language in ORDER]
    rows += [{"order": str(order_spec), "step": step, "trained_language": label, "eval_language": language,
              "split": "test", "metric": "accuracy", "value": matrix[step, j]}
             for step, label in enumerate(labels) for j, language in enumerate(ORDER)]
    pd.DataFrame(rows).to_csv(folder / "scores.csv", index=False)
    config = {"profile": "quick", "dataset": "sib200", "model": {"name": "tiny"}, "train": {}, "languages": ORDER}
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"strategy": strategy, "order_spec": order_spec, "order": ORDER, "seed": seed, "config": config}))
    result = {"metrics": {"metric": "accuracy", "chance": 0.25},
              "trainable_parameters": {"per_step": {label: per_step for label in labels}, "max_per_step": per_step,
                                       "total": per_step * len(labels)},
              "timings": {"seconds": 1.0}}
    if records is not None:
        result["strategy_records"] = records
    (folder / "result.json").write_text(json.dumps(result))
    drift = drift if drift is not None else {layer: [0.01 * (s + 1) for s in range(len(labels))] for layer in LAYERS}
    pd.DataFrame([{"step": s, "layer": layer, "relative_drift": value} for layer, values in drift.items()
                  for s, value in enumerate(values)]).to_csv(folder / "drift.csv", index=False)
    (folder / "status").write_text(status + "\n")
    return analysis.load_run(folder) if status == "complete" else folder


def runs_root(tmp_path):
    return tmp_path / "runs"


def config_for(tmp_path):
    return load_config(REPO_ROOT / "params/profiles/quick.yaml", {"runs_dir": str(runs_root(tmp_path))})


def text_of(figure: Figure) -> str:
    return " ".join(text.get_text() for ax in figure.axes for text in ax.texts)


# --------------------------------------------------------------------------- references, sections


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_reference_strategies_are_the_registry_references_other_than_the_page(strategy):
    references = pages.reference_strategies(strategy)
    expected = {name for name, cls in REGISTRY.items() if cls.joint_reference or cls.sequential_baseline}
    assert set(references) == expected - {strategy}
    flags = [REGISTRY[name].joint_reference for name in references]
    assert flags == sorted(flags, reverse=True), "the joint reference first, then the sequential baseline"


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_strategy_section_is_the_one_the_registry_names(strategy):
    key = REGISTRY[strategy].page_section
    section = pages.strategy_section(strategy)
    if key is None:
        assert section is None
        return
    assert section is SECTIONS[key]
    for name in section.calls:
        assert name in pages.__all__ and callable(getattr(pages, name))


def test_an_unknown_page_section_is_named_with_the_known_ones(monkeypatch):
    class Stray(REGISTRY["vanilla"]):
        name = "stray"
        page_section = "nonexistent"

    monkeypatch.setitem(REGISTRY, "stray", Stray)
    with pytest.raises(NbforgetError, match="page_section 'nonexistent'.*known sections: lora"):
        pages.strategy_section("stray")


def test_reference_runs_are_the_complete_runs_of_the_same_order_and_seed(tmp_path):
    run = write_run(tmp_path, "ewc")
    write_run(tmp_path, "multi", JOINT)
    write_run(tmp_path, "vanilla", status="running")
    write_run(tmp_path, "vanilla", order_spec=2)
    assert [other.strategy for other in pages.reference_runs(config_for(tmp_path), run)] == ["multi"]


# --------------------------------------------------------------------------- the shared body


@pytest.fixture
def ewc_with_references(tmp_path):
    run = write_run(tmp_path, "ewc")
    references = [write_run(tmp_path, "multi", JOINT),
                  write_run(tmp_path, "vanilla", [[0.9, 0.3, 0.2], [0.5, 0.8, 0.3], [0.4, 0.5, 0.9]])]
    return run, references


def test_score_matrix_figure_and_text_of_a_sequential_and_a_joint_run(tmp_path, ewc_with_references):
    run, (multi, _) = ewc_with_references
    figure = pages.score_matrix_figure(run)
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()] == ORDER
    text = pages.score_matrix_text(run)
    diagonal = np.mean(np.diag(MATRIX))
    assert "outlined diagonal" in text and f"(just learned): {diagonal:.3f}" in text
    joint = pages.score_matrix_text(multi)
    assert "this matrix is one row" in joint and "outlined diagonal" not in joint


def test_average_over_time_draws_the_references_found_and_names_the_missing(ewc_with_references):
    run, references = ewc_with_references
    figure = pages.average_over_time_figure(run, references)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert {"EWC", "VANILLA", "MULTI (joint)"} <= set(labels)
    text = pages.average_over_time_text(run, references)
    assert "Drawn with the complete runs of the same order and seed of MULTI" in text and "not drawn" not in text
    alone = pages.average_over_time_text(run, references[:1])
    assert "VANILLA has no complete run of the same order and seed yet" in alone


def test_metrics_table_records_the_summary_and_the_text_compares_with_both_references(ewc_with_references):
    run, references = ewc_with_references
    table = pages.metrics_table(run)
    recorded = json.loads((run.run_dir / SUMMARY_FILE).read_text())
    assert recorded["cbt"] == pytest.approx(metrics.cbt(np.array(MATRIX)))
    assert table.loc["CBT", "value"] == f"{metrics.cbt(np.array(MATRIX)):.3f}"
    text = pages.metrics_text(run, references)
    vanilla_cbt = metrics.cbt(np.array([[0.9, 0.3, 0.2], [0.5, 0.8, 0.3], [0.4, 0.5, 0.9]]))
    assert f"VANILLA's CBT on the same order and seed is {vanilla_cbt:+.3f}, so EWC forgets less." in text
    final = np.mean(MATRIX[-1])  # 0.667 against MULTI's 0.85
    assert f"ends at 0.850; the final average of EWC is {0.85 - final:.3f} below it." in text
    pages.metrics_table(references[0], record=False)
    assert not (references[0].run_dir / SUMMARY_FILE).exists()


def test_metrics_text_of_the_joint_reference_states_the_cost_of_sequential_training(ewc_with_references):
    _, (multi, vanilla) = ewc_with_references
    text = pages.metrics_text(multi, [vanilla])
    final = np.mean([0.4, 0.5, 0.9])
    assert f"ends at {final:.3f}, {0.85 - final:.3f} below it: that gap is what learning one language" in text


def test_metrics_text_of_a_joint_lora_run_compares_with_multi_and_vanilla(ewc_with_references, tmp_path):
    """MULTI LoRA is joint training but not the joint reference: its page sets its final average
    beside MULTI's and VANILLA's, and does not call the gap to VANILLA the cost of the sequence alone."""
    _, references = ewc_with_references
    run = write_run(tmp_path, "multi_lora", [[0.8, 0.7, 0.6]])
    assert run.joint and pages.reference_strategies("multi_lora") == ["multi", "vanilla"]
    text = pages.metrics_text(run, references)
    assert "CBT is not defined for this run" in text
    assert "MULTI, joint training on the same languages and seed, ends at 0.850; the final average of MULTI LoRA " \
           f"is {0.85 - 0.7:.3f} below it." in text
    final = np.mean([0.4, 0.5, 0.9])
    assert f"VANILLA, sequential training on the same order and seed, ends at {final:.3f}, " \
           f"{0.7 - final:.3f} below it; MULTI LoRA trains LoRA adapters on the frozen base model and VANILLA every weight" in text
    assert "that gap is what learning one language at a time costs" not in text


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_drift_text_names_the_extremes_and_what_the_registry_says_of_the_strategy(tmp_path, strategy):
    matrix = JOINT if REGISTRY[strategy].joint_reference else MATRIX
    steps = len(matrix)
    drift = {"embeddings": [0.01] * steps, "layer.0": [0.05] * steps, "layer.1": [0.02] * steps}
    run = write_run(tmp_path, strategy, matrix, drift=drift)
    text = pages.drift_text(run)
    assert "furthest from the base is layer.0 (0.0500) and the closest embeddings (0.0100)" in text
    assert f"mean over layers is {np.mean([0.01, 0.05, 0.02]):.4f}" in text
    assert ("separate copy of its parameters per" in text) == bool(REGISTRY[strategy].separate_parameters)
    assert ("adapters' low-rank updates" in text) == REGISTRY[strategy].uses_lora
    assert isinstance(pages.drift_figure(run), Figure)


def test_run_text_is_the_description_after_how_the_run_was_made(tmp_path):
    run = write_run(tmp_path, "vanilla")
    text = pages.run_text(run)
    assert text.endswith(analysis.describe_run(run)) and "resumes from its last completed step" in text


# --------------------------------------------------------------------------- sections


LORA = {"rank": 8, "alpha": 16, "target_modules": ["query", "value"], "adapter_parameters": 800,
        "head_parameters": 200}


def test_adapter_table_of_one_shared_adapter_against_full_fine_tuning(tmp_path):
    run = write_run(tmp_path, "shared_lora", records={language: LORA for language in ORDER}, per_step=1000)
    vanilla = write_run(tmp_path, "vanilla", per_step=10000)
    table = pages.adapter_table(run, [vanilla])
    assert table["parameters"].to_dict() == {"one adapter (rank 8)": 800, "one head": 200,
                                             "trained at each step (adapter + head)": 1000,
                                             "full fine-tuning (VANILLA, per step)": 10000}
    assert table["% of full fine-tuning"].tolist() == [8.0, 2.0, 10.0, 100.0]
    text = pages.adapter_text(run, [vanilla])
    assert "alpha / rank = 2" in text and "10.0% of the 10,000" in text
    assert "The same adapter and head are trained at every step: 1,000 parameters hold all 3 languages" in text


def test_adapter_table_of_one_adapter_per_language_and_without_a_baseline(tmp_path):
    records = {language: LORA | {"adapter": f"lang_{language}"} for language in ORDER}
    run = write_run(tmp_path, "nonshared_lora", records=records)
    table = pages.adapter_table(run)
    assert table.loc["all 3 adapters and heads of the run", "parameters"] == 3000
    assert "% of full fine-tuning" not in table
    text = pages.adapter_text(run)
    assert "3 in all: lang_en-US, lang_ru-RU, lang_th-TH" in text and "keeps 3,000 trainable parameters" in text
    assert "no complete run of the sequential baseline" in text


def test_adapter_text_of_one_adapter_trained_once_on_all_languages(tmp_path):
    run = write_run(tmp_path, "multi_lora", JOINT, records={"+".join(ORDER): LORA}, per_step=1000)
    vanilla = write_run(tmp_path, "vanilla", per_step=10000)
    assert pages.adapter_table(run, [vanilla])["parameters"].to_dict() == {
        "one adapter (rank 8)": 800, "one head": 200, "trained at each step (adapter + head)": 1000,
        "full fine-tuning (VANILLA, per step)": 10000}
    text = pages.adapter_text(run, [vanilla])
    assert "One adapter and head are trained once, on all 3 languages at once: 1,000 parameters hold them all" in text
    assert "every step" not in text


FROZEN = {"en-US": {"frozen": []}, "ru-RU": {"frozen": ["embeddings"]}, "th-TH": {"frozen": ["embeddings"]}}


def test_frozen_layers_table_and_how_far_frozen_layers_moved(tmp_path):
    drift = {"embeddings": [0.02, 0.02, 0.02], "layer.0": [0.01, 0.03, 0.06], "layer.1": [0.01, 0.02, 0.025]}
    run = write_run(tmp_path, "freeze", records=FROZEN, drift=drift)
    table = pages.frozen_layers_table(run)
    assert table["frozen during"].to_dict() == {"embeddings": "ru-RU, th-TH", "layer.0": "none", "layer.1": "none"}
    assert table.loc["layer.0", "after th-TH"] == pytest.approx(0.06)
    text = pages.frozen_layers_text(run)
    assert "en-US: none; ru-RU: embeddings; th-TH: embeddings" in text
    assert "changed by at most 0.0000 in a step" in text and "up to 0.0300 for the layers that trained" in text


def test_frozen_layers_text_reports_a_frozen_layer_that_moved(tmp_path):
    drift = {"embeddings": [0.02, 0.025, 0.025], "layer.0": [0.01, 0.02, 0.03]}
    run = write_run(tmp_path, "freeze", records=FROZEN, drift=drift)
    assert "changed by at most 0.0050 in a step" in pages.frozen_layers_text(run)


def test_penalty_table_holds_the_factors_and_the_drift_against_the_baseline(tmp_path):
    records = {language: {"l2_weight": 0.01, "layer_factors": {"embeddings": 2.0, "layer.0": 1.0}}
               for language in ORDER}
    run = write_run(tmp_path, "l2sp", records=records,
                    drift={"embeddings": [0.01] * 3, "layer.0": [0.02] * 3, "layer.1": [0.03] * 3})
    vanilla = write_run(tmp_path, "vanilla", drift={layer: [0.08] * 3 for layer in LAYERS})
    table = pages.penalty_table(run, [vanilla])
    assert table["factor"].to_dict() == {"embeddings": 2.0, "layer.0": 1.0, "layer.1": 0.0}
    assert table["weight (l2_weight × factor)"].tolist() == pytest.approx([0.02, 0.01, 0.0])
    assert table["drift: L2-SP"].tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert table["drift: VANILLA"].tolist() == pytest.approx([0.08] * 3)
    text = pages.penalty_text(run, [vanilla])
    assert "factor embeddings × 2, layer.0 × 1; free (factor 0): layer.1, head" in text
    assert "mean distance of 0.0200 from the base, against 0.0800 for VANILLA" in text and "25% of it" in text
    figure = pages.baseline_drift_figure(run, [vanilla])
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["L2-SP", "VANILLA"]


def test_fisher_mass_online_is_the_running_fisher_after_each_step(tmp_path):
    masses = [{"head": 0.2, "embeddings": 0.05, "layer.0": 0.01}, {"head": 0.5, "embeddings": 0.1, "layer.0": 0.02},
              {"head": 0.8, "embeddings": 0.15, "layer.0": 0.05}]
    records = {language: {"fisher_mass": {"online": mass}, "mode": "online"} for language, mass in zip(ORDER, masses)}
    run = write_run(tmp_path, "ewc", records=records)
    table = pages.fisher_mass_table(run)
    assert list(table.columns) == ["after en-US", "after ru-RU", "after th-TH"]
    assert list(table.index) == ["embeddings", "layer.0", "head"]
    assert table.loc["head", "after th-TH"] == 0.8
    text = pages.fisher_mass_text(run)
    assert "grew from 0.26 after en-US to 1 after th-TH" in text
    assert "head 0.8 (80%), embeddings 0.15 (15%), layer.0 0.05 (5%)" in text
    figure = pages.fisher_mass_figure(run)
    assert figure.axes[0].get_yscale() == "log" and len(figure.axes[0].patches) == 9


def test_fisher_mass_separate_has_one_term_per_language(tmp_path):
    last = {"en-US": {"head": 0.3, "layer.0": 0.1}, "ru-RU": {"head": 0.4, "layer.0": 0.2}}
    records = {"en-US": {"fisher_mass": {"en-US": last["en-US"]}, "mode": "separate"},
               "ru-RU": {"fisher_mass": last, "mode": "separate"}}
    run = write_run(tmp_path, "ewc", MATRIX[:2], records=records)
    table = pages.fisher_mass_table(run)
    assert list(table.columns) == ["en-US", "ru-RU"] and table.loc["layer.0", "ru-RU"] == 0.2
    text = pages.fisher_mass_text(run)
    assert "Separate mode" in text and "head 0.7 (70%), layer.0 0.3 (30%)" in text


def test_reversion_table_infers_the_drift_before_the_last_reversion(tmp_path):
    alpha = {"embeddings": 1.0, "layer.0": 0.5, "layer.1": 0.25}
    records = {language: {"alpha": alpha, "when": "each", "reverted": True} for language in ORDER}
    run = write_run(tmp_path, "reversion", records=records,
                    drift={"embeddings": [0.0] * 3, "layer.0": [0.02] * 3, "layer.1": [0.03] * 3})
    vanilla = write_run(tmp_path, "vanilla", drift={layer: [0.1] * 3 for layer in LAYERS})
    table = pages.reversion_table(run, [vanilla])
    assert table["alpha"].tolist() == [1.0, 0.5, 0.25]
    before = table["just before the last reversion"]
    assert np.isnan(before["embeddings"]), "alpha = 1 restores the base: the distance before is not known"
    assert before["layer.0"] == pytest.approx(0.04) and before["layer.1"] == pytest.approx(0.04)
    assert table["drift: VANILLA"].tolist() == pytest.approx([0.1] * 3)
    text = pages.reversion_text(run, [vanilla])
    assert "reverted after every language" in text
    assert "mean distance of 0.0400 from the base; after it, 0.0250" in text
    assert "against 0.1000 for VANILLA" in text


def test_reversion_at_the_end_only(tmp_path):
    records = {language: {"alpha": {"layer.0": 0.5}, "when": "end", "reverted": language == "th-TH"}
               for language in ORDER}
    run = write_run(tmp_path, "reversion", records=records)
    assert "reverted once, after the last language (th-TH)" in pages.reversion_text(run)


def test_experts_table_of_a_merge(tmp_path):
    records = {language: {"experts": ORDER[:k + 1], "trained_expert": language, "method": "ties", "lam": 1.0,
                          "density": 0.5} for k, language in enumerate(ORDER)}
    run = write_run(tmp_path, "merge", records=records)
    table = pages.experts_table(run)
    assert list(table.index) == ORDER and "serves" not in table
    assert table["just trained"].tolist() == pytest.approx(np.diag(MATRIX).tolist())
    assert table["final"].tolist() == pytest.approx(MATRIX[-1])
    text = pages.experts_text(run)
    assert "merged by TIES: each expert's update trimmed to its 50% largest entries" in text
    assert "The final model merges 3 of them" in text
    assert "the languages of en-US changed most: 0.900 → 0.600 (-0.300)" in text


def test_experts_table_of_family_experts(tmp_path):
    families = {"Indo-European": ["en-US", "ru-RU"], "Tai-Kadai": ["th-TH"]}
    records = {"en-US": {"trained_expert": "Indo-European", "experts": {"Indo-European": families["Indo-European"]}},
               "ru-RU": {"trained_expert": "Indo-European", "experts": {"Indo-European": families["Indo-European"]}},
               "th-TH": {"trained_expert": "Tai-Kadai", "experts": families}}
    run = write_run(tmp_path, "family_experts", records=records)
    table = pages.experts_table(run)
    assert table.loc["Indo-European", "trained on"] == "en-US, ru-RU"
    assert table.loc["Indo-European", "serves"] == "en-US, ru-RU" and table.loc["Tai-Kadai", "first step"] == 3
    assert table.loc["Indo-European", "just trained"] == pytest.approx((0.9 + 0.8) / 2)
    assert table.loc["Indo-European", "final"] == pytest.approx((0.6 + 0.5) / 2)
    text = pages.experts_text(run)
    assert "2 experts for 3 languages: Indo-European (en-US, ru-RU); Tai-Kadai (th-TH)" in text
    assert "TIES" not in text and "Indo-European changed most: 0.850 → 0.550 (-0.300)" in text


# Records as each section's strategies write them (`Strategy.step_record`), one step each.
SAMPLE_RECORDS = {
    "lora": LORA,
    "freeze": {"frozen": ["embeddings"]},
    "regularization": {"l2_weight": 0.01, "layer_factors": {"embeddings": 1.0}},
    "ewc": {"fisher_mass": {"online": {"head": 0.5, "embeddings": 0.1}}, "mode": "online"},
    "reversion": {"alpha": {"embeddings": 0.5}, "when": "each", "reverted": True},
    "experts": {"trained_expert": "Indo-European", "experts": {"Indo-European": ["en-US"]}},
}


def test_every_section_has_a_sample_record():
    assert set(SAMPLE_RECORDS) == set(SECTIONS)


@pytest.mark.parametrize("strategy", sorted(name for name, cls in REGISTRY.items() if cls.page_section))
def test_every_section_shows_what_its_strategy_recorded_or_says_it_was_not(tmp_path, strategy):
    section = pages.strategy_section(strategy)
    record = SAMPLE_RECORDS[REGISTRY[strategy].page_section]
    recorded = write_run(tmp_path / "recorded", strategy, records={language: record for language in ORDER})
    vanilla = write_run(tmp_path / "recorded", "vanilla")
    assert not section.table(recorded, [vanilla]).empty
    text = section.text(recorded, [vanilla])
    assert "records no" not in text and text.strip()
    if section.figure is not None:
        figure = section.figure(recorded, [vanilla])
        assert isinstance(figure, Figure) and figure.axes[0].patches, "bars drawn"
    older = write_run(tmp_path / "older", strategy)
    assert "records no" in section.text(older) and "run it again" in section.text(older)


# --------------------------------------------------------------------------- plots.plot_layer_bars


def test_layer_bars_draw_one_bar_per_finite_value_in_the_table_order():
    table = pd.DataFrame({"EWC": [0.1, 0.02, np.nan], "VANILLA": [0.2, 0.0, 0.3]},
                         index=["embeddings", "layer.0", "layer.1"])
    figure = plots.plot_layer_bars(table, value_label="drift")
    ax = figure.axes[0]
    assert isinstance(figure, Figure) and not plt.get_fignums()
    assert len(ax.patches) == 5  # the NaN draws nothing
    assert [label.get_text() for label in ax.get_xticklabels()] == ["embeddings", "layer.0", "layer.1"]
    assert ax.get_ylabel() == "drift" and ax.get_yscale() == "linear"
    logged = plots.plot_layer_bars(table, value_label="mass", log=True).axes[0]
    assert logged.get_yscale() == "log" and len(logged.patches) == 4  # and so does the zero on a log scale
    outer, given = plt.subplots()
    assert plots.plot_layer_bars(table, value_label="drift", ax=given) is outer
    plt.close(outer)
    assert "nothing recorded" in text_of(plots.plot_layer_bars(pd.DataFrame(), value_label="drift"))
