"""Held-out languages: scored before training and after every step, never trained.

Their measures on hand-computed matrices; the settings' validation; which model each kind of
strategy scores them with; the engine on the quick profile (the held-out column at step -1 and
every step, never trained, the papers' metrics unchanged); the pages on hand-made runs; the
notebooks' held-out section and its removal from pages whose profile holds out nothing; and the
MASSIVE profile that trains th-TH and holds out en-US (slow).
"""
from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from nbforget import NbforgetError, analysis, metrics, pages, plots  # noqa: E402
from nbforget.batch.notebooks import OPTIONAL_SECTIONS, load_source, without_absent_sections  # noqa: E402
from nbforget.config import REPO_ROOT, load_config  # noqa: E402
from nbforget.runs import base_scores, score_matrix  # noqa: E402
from nbforget.strategies import REGISTRY, RunContext, Step, run_store  # noqa: E402
from nbforget.strategies.core import adapter_name  # noqa: E402

QUICK = REPO_ROOT / "params" / "profiles" / "quick.yaml"
MASSIVE_TH = REPO_ROOT / "params" / "profiles" / "massive-th.yaml"
ORDER = ["en-US", "ru-RU", "th-TH"]
HELD = ["de-DE", "fi-FI"]

# rows = after each step; columns = held-out languages
H = [[0.40, 0.10],
     [0.55, 0.30],
     [0.35, 0.30]]
B = [0.20, 0.05]


# --------------------------------------------------------------------------- metrics


def test_erosion_is_the_final_score_minus_the_best_and_never_positive():
    np.testing.assert_allclose(metrics.held_out_erosion(H), [0.35 - 0.55, 0.0])
    assert (metrics.held_out_erosion(np.random.default_rng(0).random((5, 4))) <= 0).all()
    np.testing.assert_allclose(metrics.held_out_erosion([[0.3, 0.7]]), [0.0, 0.0])  # one step: nothing lost


def test_change_is_the_final_score_minus_the_base():
    np.testing.assert_allclose(metrics.held_out_change(H, B), [0.15, 0.25])


def test_held_out_metrics_are_means_over_the_held_out_languages():
    summary = metrics.held_out_metrics(H, B)
    assert summary == pytest.approx({"held_out_final": 0.325, "held_out_best": 0.425, "held_out_erosion": -0.10,
                                     "held_out_base": 0.125, "held_out_change": 0.20})
    assert "held_out_change" not in metrics.held_out_metrics(H)
    assert metrics.held_out_metrics(np.zeros((3, 0))) == {}


def test_held_out_measures_refuse_a_missing_cell_or_a_base_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"held_out\[1, 0\] is not finite"):
        metrics.held_out_erosion([[0.1, 0.2], [np.nan, 0.3]])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        metrics.held_out_change(H, [0.1])


# --------------------------------------------------------------------------- settings


def test_held_out_languages_are_part_of_the_identity_only_when_there_are_some(tmp_path):
    plain = load_config(QUICK, {"runs_dir": str(tmp_path)})
    held = load_config(QUICK, {"runs_dir": str(tmp_path), "held_out_languages": ["de-DE"]})
    assert "held_out_languages" not in plain.result_settings()  # runs made before the setting keep their folder
    assert held.result_settings()["held_out_languages"] == ["de-DE"]
    assert run_store(plain, "vanilla").path != run_store(held, "vanilla").path
    assert held.evaluated_languages == [*ORDER, "de-DE"] and plain.evaluated_languages == ORDER


@pytest.mark.parametrize("held_out, expected", [
    (["th-TH"], ["held_out_languages[0] is 'th-TH'", "also languages[2]", "drop th-TH from held_out_languages"]),
    (["xx-XX"], ["unknown locale 'xx-XX'", "held_out_languages[0]"]),
    (["de-DE", "de-DE"], ["held_out_languages has duplicates", "held_out_languages[1]", "list each locale once"]),
    (["de-BA"], ["'de-BA'", "not in data set 'sib200'", "drop it from held_out_languages", "held_out_languages[0]"]),
])
def test_bad_held_out_languages_are_refused_at_load_with_the_locale_named(held_out, expected):
    with pytest.raises(NbforgetError) as error:
        load_config(QUICK, {"held_out_languages": held_out})
    missing = [text for text in expected if text not in str(error.value)]
    assert not missing, f"{missing} not in: {error.value}"


def test_a_held_out_language_missing_from_the_prepared_data_is_named_with_the_fix(data_ready, tmp_path):
    from nbforget.tasks import prepare

    config = load_config(MASSIVE_TH, {"runs_dir": str(tmp_path), "held_out_languages": ["de-DE"]})
    with pytest.raises(NbforgetError) as error:
        prepare(config, progress=False)
    text = str(error.value)
    assert "held-out language 'de-DE'" in text and "held_out_languages[0]" in text
    assert "drop it from held_out_languages" in text


# --------------------------------------------------------------------------- which model scores a held-out language


def context(order=tuple(ORDER), held_out=tuple(HELD)) -> RunContext:
    from nbforget.languages import get_language

    config = load_config(QUICK, {"held_out_languages": list(held_out)})
    families = {language: get_language(language).family for language in (*order, *held_out)}
    return RunContext(config, task=None, base_source="", seed=0, device=None, order=order, families=families,
                      held_out=held_out)


class Adapters:
    """Stands in for a peft model: records the adapter set active."""

    def __init__(self) -> None:
        self.active = None

    def set_adapter(self, name: str) -> None:
        self.active = name


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_every_strategy_says_on_its_class_how_it_scores_a_held_out_language(strategy):
    text = REGISTRY[strategy].held_out_scoring
    assert text.startswith(("with ", "as ")) and len(text) > 30


def test_mono_scores_a_held_out_language_with_the_model_the_step_trained():
    mono = REGISTRY["mono"](context())
    mono.trained = ["en-US", "ru-RU"]
    step_model = object()
    assert mono.model_for(step_model, "de-DE", Step(1, ("ru-RU",))) is step_model  # never a reused score
    assert mono.model_for(step_model, "en-US", Step(1, ("ru-RU",))) is None  # en-US keeps its own model's score


def test_nonshared_lora_scores_a_held_out_language_with_the_adapter_of_the_step():
    lora = REGISTRY["nonshared_lora"](context())
    lora.trained = ["en-US", "ru-RU"]
    model = Adapters()
    lora.model_for(model, "de-DE", Step(1, ("ru-RU",)))
    assert model.active == adapter_name("ru-RU")
    lora.model_for(model, "en-US", Step(1, ("ru-RU",)))
    assert model.active == adapter_name("en-US")


def test_family_experts_route_a_held_out_language_to_its_family_or_to_the_latest_expert(monkeypatch):
    experts = REGISTRY["family_experts"](context())
    experts.trained = ["en-US", "ru-RU", "th-TH"]
    experts.experts = {"Indo-European": {}, "Tai-Kadai": {}}
    loaded = []
    monkeypatch.setattr(experts, "load", lambda model, key: loaded.append(key) or model)
    experts.model_for(object(), "de-DE", Step(2, ("th-TH",)))  # Indo-European, as en-US and ru-RU
    experts.model_for(object(), "fi-FI", Step(2, ("th-TH",)))  # Uralic: no expert, so the latest
    assert loaded == ["Indo-European", "Tai-Kadai"]
    served = experts.step_record(None, Step(2, ("th-TH",)))["experts"]
    assert "de-DE" in served["Indo-European"]


# --------------------------------------------------------------------------- the engine (quick profile)


def held_out_run_config(runs_dir, base_model, held_out=("de-DE",)):
    """The quick profile on a fixed base model folder, so that a run with held-out languages and one
    without start from the same encoder (the tiny encoder is otherwise built for every evaluated
    language)."""
    return load_config(QUICK, {"runs_dir": str(runs_dir), "held_out_languages": list(held_out),
                               "model": {"name": str(base_model)}})


@pytest.fixture(scope="module")
def quick_base_model(data_ready):
    from nbforget.models import base_model_dir

    config = load_config(QUICK)
    return base_model_dir(config.model, list(config.languages), config.data_path, progress=False)


@pytest.fixture(scope="module")
def vanilla_pair(tmp_path_factory, quick_base_model):
    """VANILLA on the quick profile with de-DE held out, and the same run without it."""
    from nbforget.engine import run_strategy

    root = tmp_path_factory.mktemp("held-out")
    held = run_strategy(held_out_run_config(root, quick_base_model), "vanilla", progress=False)
    plain = run_strategy(held_out_run_config(root, quick_base_model, held_out=()), "vanilla", progress=False)
    return held, plain


def test_the_held_out_column_is_scored_at_the_base_and_every_step_and_never_trained(vanilla_pair):
    held, _ = vanilla_pair
    scores = pd.read_csv(held / "scores.csv")
    progress = json.loads((held / "progress.json").read_text())
    stored = yaml.safe_load((held / "config.yaml").read_text())
    assert stored["held_out"] == ["de-DE"] and "de-DE" not in stored["order"]
    german = scores[(scores.eval_language == "de-DE") & (scores.metric == "accuracy")]
    assert sorted(german.step) == [-1, 0, 1, 2] and german.value.between(0, 1).all()
    assert all("de-DE" not in step["languages"] for step in progress["steps"])
    assert "de-DE" not in set(scores.trained_language.dropna())
    columns = list(dict.fromkeys(scores[scores.step == 0].eval_language))
    assert columns == [*ORDER, "de-DE"], "the held-out languages come after the trained ones"


def test_the_papers_metrics_read_the_trained_languages_only(vanilla_pair):
    held, plain = vanilla_pair
    result, other = (json.loads((folder / "result.json").read_text()) for folder in (held, plain))
    scores = pd.read_csv(held / "scores.csv")
    trained = score_matrix(scores, ORDER, metric="accuracy")
    expected = metrics.run_metrics(trained, base_scores(scores, ORDER, metric="accuracy"))
    assert {key: result["metrics"][key] for key in expected} == pytest.approx(expected)
    assert set(result["metrics"]) == {*expected, "chance", "metric"}
    # held-out languages only observe: the trained languages' scores are those of the run without them
    plain_scores = pd.read_csv(plain / "scores.csv")
    np.testing.assert_array_equal(trained, score_matrix(plain_scores, ORDER, metric="accuracy"))
    assert result["metrics"] == other["metrics"]
    assert "held_out" not in other


def test_result_json_records_the_held_out_measures_of_the_extra_column(vanilla_pair):
    held, _ = vanilla_pair
    result = json.loads((held / "result.json").read_text())
    scores = pd.read_csv(held / "scores.csv")
    column = score_matrix(scores, ["de-DE"], metric="accuracy")
    base = scores[(scores.step == -1) & (scores.eval_language == "de-DE") & (scores.metric == "accuracy")].value
    record = result["held_out"]
    assert record["languages"] == ["de-DE"]
    assert record["metrics"] == pytest.approx(metrics.held_out_metrics(column, base.to_numpy()))
    german = record["per_language"]["de-DE"]
    assert german["erosion"] == pytest.approx(column[-1, 0] - column.max())
    assert german["change"] == pytest.approx(column[-1, 0] - float(base.iloc[0]))
    run = analysis.load_run(held)
    assert run.held_out == ("de-DE",) and run.held_out_matrix.shape == (3, 1) and run.matrix.shape == (3, 3)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_every_strategy_scores_the_held_out_languages_after_every_step(strategy, tmp_path, data_ready):
    from nbforget.engine import run_strategy

    config = load_config(QUICK, {"runs_dir": str(tmp_path), "held_out_languages": ["de-DE"]})
    run = analysis.load_run(run_strategy(config, strategy, progress=False))
    assert run.held_out == ("de-DE",)
    assert run.held_out_matrix.shape == (run.matrix.shape[0], 1) and np.isfinite(run.held_out_matrix).all()
    assert run.held_out_base is not None and np.isfinite(run.held_out_base).all()
    assert all("de-DE" not in label.split("+") for label in run.trained)
    assert set(run.result["held_out"]["per_language"]) == {"de-DE"}


# --------------------------------------------------------------------------- pages (hand-made runs)


MATRIX = [[0.9, 0.3, 0.2], [0.7, 0.8, 0.3], [0.6, 0.5, 0.9]]


def write_run(root, strategy, matrix=MATRIX, held=H, base=B, *, held_out=tuple(HELD), order_spec=1):
    """A complete run folder of `strategy` on the quick profile with `held_out` languages, as the
    engine writes it (the scores of the trained languages `matrix`, of the held-out ones `held`)."""
    config = load_config(QUICK, {"runs_dir": str(root), "held_out_languages": list(held_out)})
    folder = run_store(config, strategy, order_spec, 0).path
    folder.mkdir(parents=True)
    matrix, held = np.asarray(matrix, dtype=float), np.asarray(held, dtype=float)
    labels = ["+".join(ORDER)] if matrix.shape[0] == 1 else ORDER[:matrix.shape[0]]
    evaluated = [*ORDER, *held_out]
    base_row = [0.1] * len(ORDER) + list(base)[:len(held_out)]
    rows = [{"order": str(order_spec), "step": -1, "trained_language": "", "eval_language": language,
             "split": "test", "metric": "accuracy", "value": base_row[j]} for j, language in enumerate(evaluated)]
    full = np.hstack([matrix, held[:, :len(held_out)]])
    rows += [{"order": str(order_spec), "step": step, "trained_language": label, "eval_language": language,
              "split": "test", "metric": "accuracy", "value": full[step, j]}
             for step, label in enumerate(labels) for j, language in enumerate(evaluated)]
    pd.DataFrame(rows).to_csv(folder / "scores.csv", index=False)
    record = {"strategy": strategy, "order_spec": order_spec, "order": ORDER, "seed": 0,
              "config": {"profile": "quick", "dataset": "sib200", "model": {"name": "tiny"}, "train": {},
                         "languages": ORDER, "held_out_languages": list(held_out)}}
    if held_out:
        record["held_out"] = list(held_out)
    (folder / "config.yaml").write_text(yaml.safe_dump(record))
    result = {"metrics": {"metric": "accuracy", "chance": 0.25},
              "trainable_parameters": {"per_step": {label: 100 for label in labels}, "max_per_step": 100,
                                       "total": 100 * len(labels)}, "timings": {"seconds": 1.0}}
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "drift.csv").write_text("step,layer,relative_drift\n0,layer.0,0.1\n")
    (folder / "status").write_text("complete\n")
    return analysis.load_run(folder)


def test_score_matrix_figure_marks_the_held_out_columns_after_the_trained_ones(tmp_path):
    run = write_run(tmp_path, "vanilla")
    figure = pages.score_matrix_figure(run)
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks == [*ORDER, "de-DE (held out)", "fi-FI (held out)"]
    lines = [line for line in figure.axes[0].get_lines() if list(line.get_xdata()) == [3, 3]]
    assert lines, "a line separates the held-out columns from the trained ones"
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts[:5] == ["0.90", "0.30", "0.20", "0.40", "0.10"]  # row 0: trained, then held out
    assert "held-out languages" in pages.score_matrix_text(run) and "de-DE, fi-FI" in pages.score_matrix_text(run)
    with pytest.raises(ValueError, match="held_out_matrix"):
        plots.plot_score_matrix(MATRIX, ORDER, held_out=HELD, held_out_matrix=[[0.1, 0.2]])


def test_held_out_table_holds_every_step_the_best_the_change_and_the_erosion(tmp_path):
    table = pages.held_out_table(write_run(tmp_path, "vanilla"))
    assert list(table.index) == HELD
    assert list(table.columns) == ["base", "after en-US", "after ru-RU", "after th-TH", "best", "best after",
                                   "final", "change", "erosion"]
    german = table.loc["de-DE"]
    assert german["best"] == pytest.approx(0.55) and german["best after"] == "ru-RU"
    assert german["change"] == pytest.approx(0.15) and german["erosion"] == pytest.approx(-0.20)
    assert table.loc["fi-FI", "erosion"] == pytest.approx(0.0)


def test_held_out_text_says_how_the_strategy_scores_them_and_compares_with_the_baseline(tmp_path):
    run = write_run(tmp_path, "mono")
    baseline = write_run(tmp_path, "vanilla", held=[[0.40, 0.10], [0.55, 0.30], [0.15, 0.10]])
    text = pages.held_out_text(run, [baseline])
    assert REGISTRY["mono"].held_out_scoring in text
    assert "de-DE: base 0.200, best 0.550 after ru-RU, final 0.350; change +0.150, erosion -0.200." in text
    assert "Mean erosion -0.100, against -0.300 for VANILLA" in text and "erodes less" in text
    figure = pages.held_out_figure(run, [baseline])
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "de-DE (held out)" in labels and "VANILLA, mean of the held-out languages" in labels


def test_a_run_without_held_out_languages_has_an_empty_section(tmp_path):
    run = write_run(tmp_path, "vanilla", held=np.zeros((3, 0)), base=[], held_out=())
    assert run.held_out == () and pages.held_out_table(run).empty
    assert "holds out no language" in pages.held_out_text(run)
    assert "holds out no language" in " ".join(t.get_text() for t in pages.held_out_figure(run).axes[0].texts)
    ticks = [label.get_text() for label in pages.score_matrix_figure(run).axes[0].get_xticklabels()]
    assert ticks == ORDER


def test_overview_measures_per_strategy_and_its_text(tmp_path):
    write_run(tmp_path, "vanilla", held=[[0.40, 0.10], [0.55, 0.30], [0.15, 0.10]])
    write_run(tmp_path, "ewc")
    write_run(tmp_path, "multi", [[0.9, 0.85, 0.8]], held=[[0.5, 0.4]])
    config = load_config(QUICK, {"runs_dir": str(tmp_path), "held_out_languages": HELD,
                                 "strategies": ["multi", "vanilla", "ewc"]})
    study = analysis.load_study(config)
    table = analysis.held_out_table(study)
    assert list(table.index) == ["multi", "vanilla", "ewc"]
    assert table.loc["vanilla", "erosion"] == pytest.approx(-0.30)
    assert table.loc["ewc", "erosion"] == pytest.approx(-0.10) and table.loc["multi", "erosion"] == 0.0
    assert table.loc["multi", "change"] == pytest.approx(np.mean([0.5 - 0.2, 0.4 - 0.05]))
    curves = analysis.held_out_over_time(study)
    assert curves[curves.strategy == "vanilla"]["value"].tolist() == pytest.approx([0.25, 0.425, 0.125])
    assert curves[curves.strategy == "multi"]["joint"].all()
    text = analysis.held_out_text(study)
    assert "Held out: de-DE, fi-FI" in text and "MULTI keeps the most" in text and "VANILLA the least (-0.300)" in text
    assert "de-DE, fi-FI" in study.describe()
    plain = load_config(QUICK, {"runs_dir": str(tmp_path)})
    assert "holds out no language" in analysis.held_out_text(analysis.load_study(plain))


# --------------------------------------------------------------------------- notebooks


STRATEGY_PAGES = sorted((REPO_ROOT / "notebooks" / "strategies").glob("*.py"))


def held_out_cells(notebook):
    return [cell for cell in notebook.cells if "held-out" in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("path", STRATEGY_PAGES, ids=lambda path: path.stem)
def test_every_strategy_page_has_the_held_out_section_in_tagged_cells(path):
    notebook = load_source(path)
    cells = held_out_cells(notebook)
    assert cells and cells[0].cell_type == "markdown"
    assert cells[0].source.splitlines()[0].endswith(f". {pages.HELD_OUT_SECTION.heading}")
    calls = [name for cell in cells[1:] for name in pages.HELD_OUT_SECTION.calls if f"pages.{name}(" in cell.source]
    assert calls == list(pages.HELD_OUT_SECTION.calls)
    figure = next(cell for cell in cells if "held_out_figure" in cell.source)
    assert figure.metadata["mystnb"]["figure"]["name"] == f"{path.stem.replace('_', '-')}-held-out"
    last = max(index for index, cell in enumerate(notebook.cells) if cell in cells)
    following = [cell for cell in notebook.cells[last + 1:] if cell.cell_type == "markdown"]
    assert all(not cell.source.startswith("## 1") and "## Versions" in cell.source for cell in following), \
        "the held-out section is the last numbered one, so leaving it out keeps the numbering"


@pytest.mark.parametrize("path", [*STRATEGY_PAGES[:1], REPO_ROOT / "notebooks" / "analyses" / "overview.py"],
                         ids=lambda path: path.stem)
def test_the_held_out_section_is_left_out_of_a_page_whose_profile_holds_out_nothing(path):
    assert "held-out" in OPTIONAL_SECTIONS
    parameters = {"params_file": "params/profiles/quick.yaml", "overrides": {}}
    before = load_source(path)
    assert held_out_cells(before)
    kept = without_absent_sections(load_source(path), {**parameters, "overrides": {"held_out_languages": ["de-DE"]}})
    assert len(kept.cells) == len(before.cells)
    dropped = without_absent_sections(load_source(path), parameters)
    assert not held_out_cells(dropped) and len(dropped.cells) == len(before.cells) - len(held_out_cells(before))
    broken = without_absent_sections(load_source(path), {**parameters, "overrides": {"languages": ["xx-XX"]}})
    assert len(broken.cells) == len(before.cells), "a config that does not load leaves the page to report it"


# --------------------------------------------------------------------------- MASSIVE, th-TH trained, en-US held out


@pytest.mark.slow
def test_massive_th_trains_thai_on_its_real_rows_and_scores_english_held_out(tmp_path, data_ready):
    from nbforget.engine import run_strategy

    config = load_config(MASSIVE_TH, {"runs_dir": str(tmp_path)})
    assert config.dataset == "massive" and config.languages == ["th-TH"] and config.held_out_languages == ["en-US"]
    run = analysis.load_run(run_strategy(config, "vanilla", progress=False))
    scores = pd.read_csv(run.run_dir / "scores.csv")
    english = scores[(scores.eval_language == "en-US") & (scores.metric == "slot_f1")]
    assert sorted(english.step) == [-1, *range(run.matrix.shape[0])]
    assert run.held_out_matrix.shape == (run.matrix.shape[0], 1) and np.isfinite(run.held_out_matrix).all()
    assert "en-US" not in run.trained
    assert run.chance == 0.0 and run.matrix[-1, 0] > 0.2, f"th-TH slot F1 {run.matrix[-1, 0]:.3f}, chance 0"
    record = run.result["held_out"]["per_language"]["en-US"]
    assert math.isfinite(record["erosion"]) and record["erosion"] <= 0
