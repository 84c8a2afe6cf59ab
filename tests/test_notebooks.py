"""The notebooks: their sources, their execution with papermill and nbval, and the grid that runs them.

One grid over the quick profile, every registered strategy and every analysis, is executed once
per session (`grid`) into temporary folders: papermill runs each strategy notebook with the
runs directory overridden, and the tests read what the notebooks wrote. nbval then executes every
notebook with its default parameters against the same runs (through ``NBFORGET_RUNS_DIR``), so
nothing is trained twice. The tests are table-driven over the strategy registry: a strategy
registered without a notebook fails here.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from nbforget.config import REPO_ROOT, load_config
from nbforget.batch.grid import run_grid
from nbforget.batch.notebooks import RUN_NOTEBOOK, Failure, load_source
from nbforget import analysis, pages
from nbforget.pages import RUNS_DIR_ENV, SUMMARY_FILE
from nbforget.strategies import REGISTRY

QUICK = "params/profiles/quick.yaml"
NOTEBOOKS = REPO_ROOT / "notebooks"
STRATEGY_SOURCES = sorted((NOTEBOOKS / "strategies").glob("*.py"))
ANALYSIS_SOURCES = sorted((NOTEBOOKS / "analyses").glob("*.py"))
ANALYSES = ("overview", "script", "family", "vitality", "models")
STRATEGIES = sorted(REGISTRY)
PARAMETERS = {"strategies": ("params_file", "order", "seed", "overrides"), "analyses": ("params_file", "runs_dir")}
TOLERANCE = 1e-9


# --------------------------------------------------------------------------- sources (fast)


def parameters_cell(path: Path):
    notebook = load_source(path)
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    return notebook, cells[0]


def strategy_page(strategy: str):
    source = NOTEBOOKS / "strategies" / f"{strategy}.py"
    assert source.exists(), f"strategy {strategy!r} is registered but {source} does not exist"
    return load_source(source)


def page_calls(cell) -> list[str]:
    """The `nbforget.pages` functions a code cell calls (``pages.name(...)``), in source order."""
    calls = [node for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
             and node.func.value.id == "pages"]
    return [node.func.attr for node in sorted(calls, key=lambda node: (node.lineno, node.col_offset))]


def headings(notebook) -> list[tuple[int, str]]:
    return [(index, line) for index, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def assert_figure_cell(cell, prefix: str, strategy: str) -> None:
    """A figure cell: labelled and captioned for the book, and the figure is the cell's value."""
    figure = cell.metadata.get("mystnb", {}).get("figure", {})
    assert figure.get("name", "").startswith(prefix + "-") and figure.get("caption"), \
        f"{strategy}.py: {cell.source.splitlines()[-1]!r} must be in a cell with mystnb figure caption and name"
    last = ast.parse(cell.source).body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), \
        f"{strategy}.py: the figure call must be the last expression of its cell, so the page shows it"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_registered_strategy_has_a_notebook_with_its_title_and_purpose(strategy):
    first = strategy_page(strategy).cells[0]
    assert first.cell_type == "markdown"
    lines = first.source.splitlines()
    assert lines[0] == f"# {REGISTRY[strategy].title}"
    assert len(" ".join(line for line in lines[1:] if line.strip())) > 100, \
        f"{strategy}.py: the title is followed by a paragraph that says what the strategy does"


# What every strategy page shows, in this order: calls into nbforget.pages. A figure call sits in a
# cell labelled "<page>-<suffix>" (the book cross-references these names).
PAGE_CALLS = ("notebook_config", "strategy_run", "run_text", "score_matrix_figure", "score_matrix_text",
              "reference_runs", "average_over_time_figure", "average_over_time_text", "metrics_table",
              "metrics_text", "drift_figure", "drift_text", "versions_table")
PAGE_FIGURES = {"score_matrix_figure": "score-matrix", "average_over_time_figure": "average-over-time",
                "drift_figure": "drift"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_page_runs_its_strategy_through_the_shared_page_functions(strategy):
    notebook = strategy_page(strategy)
    prefix = strategy.replace("_", "-")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"
            and "parameters" not in cell.metadata.get("tags", [])]
    calls = [call for cell in code for call in page_calls(cell)]
    missing = [name for name in PAGE_CALLS if name not in calls]
    assert not missing, f"{strategy}.py does not call pages.{', pages.'.join(missing)}"
    assert [call for call in calls if call in PAGE_CALLS] == list(PAGE_CALLS), \
        f"{strategy}.py calls the shared page functions out of order: {calls}"
    source = "\n".join(cell.source for cell in code)
    assert f'STRATEGY = "{strategy}"' in source
    assert "pages.strategy_run(config, STRATEGY," in source, f"{strategy}.py must run its own strategy"
    for function, suffix in PAGE_FIGURES.items():
        cell = next(cell for cell in code if function in page_calls(cell))
        assert_figure_cell(cell, prefix, strategy)
        assert cell.metadata["mystnb"]["figure"]["name"] == f"{prefix}-{suffix}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_page_has_the_section_its_registry_entry_names(strategy):
    """A strategy with a ``page_section`` has that section (heading, then cells calling its functions
    in order, its figure in a labelled cell); one without has none of the sections."""
    from nbforget.pages import SECTIONS, strategy_section

    notebook = strategy_page(strategy)
    section = strategy_section(strategy)
    found = headings(notebook)
    if section is None:
        others = [line for _, line in found for other in SECTIONS.values() if line.endswith(f". {other.heading}")]
        assert not others, f"{strategy} has no page_section, but its page has {others}"
        return
    pattern = re.compile(rf"## \d+\. {re.escape(section.heading)}$")
    matches = [index for index, line in found if pattern.match(line)]
    assert len(matches) == 1, f"{strategy}.py needs one heading '## <n>. {section.heading}'"
    start = matches[0]
    end = next((index for index, _ in found if index > start), len(notebook.cells))
    cells = [cell for cell in notebook.cells[start + 1:end] if cell.cell_type == "code"]
    calls = [call for cell in cells for call in page_calls(cell)]
    assert [call for call in calls if call in section.calls] == list(section.calls), \
        f"{strategy}.py: the section '{section.heading}' calls {calls}, expected {section.calls}"
    if section.figure is not None:
        cell = next(cell for cell in cells if section.figure.__name__ in page_calls(cell))
        assert_figure_cell(cell, strategy.replace("_", "-"), strategy)


def test_every_strategy_notebook_names_a_registered_strategy():
    unknown = [path.stem for path in STRATEGY_SOURCES if path.stem not in REGISTRY]
    assert not unknown, f"notebooks without a registered strategy: {unknown}"


def test_the_five_analyses_exist():
    assert {path.stem for path in ANALYSIS_SOURCES} >= set(ANALYSES)


@pytest.mark.parametrize("path", STRATEGY_SOURCES + ANALYSIS_SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_parameters_cell_holds_literals_only_with_quick_defaults(path):
    _, cell = parameters_cell(path)
    tree = ast.parse(cell.source)
    names = []
    for statement in tree.body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, \
            f"{path}: the parameters cell may only assign literals, found {ast.dump(statement)[:80]}"
        names.append(statement.targets[0].id)
        ast.literal_eval(statement.value)  # raises on anything computed
    assert set(PARAMETERS[path.parent.name]) <= set(names)
    values = {target: ast.literal_eval(value) for target, value in
              ((s.targets[0].id, s.value) for s in tree.body)}
    assert values["params_file"] == QUICK, "the default parameters must be the quick (test) profile"


@pytest.mark.parametrize("path", STRATEGY_SOURCES + ANALYSIS_SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebooks_hold_no_training_logic(path):
    text = path.read_text()
    for forbidden in ("import torch", "train_language", ".backward(", "optimizer", "RunStore("):
        assert forbidden not in text, f"{path} contains {forbidden!r}: logic belongs in the package"
    if path.parent.name == "analyses":
        assert "run_strategy" not in text, f"{path}: analyses only read runs"


@pytest.mark.parametrize("path", STRATEGY_SOURCES + ANALYSIS_SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebook_headings_are_consecutive_and_figure_labels_unique(path):
    """One title, then sections one level down: the book build treats skipped levels as errors."""
    notebook = load_source(path)
    levels = [len(line) - len(line.lstrip("#")) for cell in notebook.cells if cell.cell_type == "markdown"
              for line in cell.source.splitlines() if line.startswith("#")]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(later <= earlier + 1 for earlier, later in zip(levels, levels[1:]))
    names = [cell.metadata["mystnb"]["figure"]["name"] for cell in notebook.cells
             if "figure" in cell.metadata.get("mystnb", {})]
    assert len(names) == len(set(names))
    prefix = path.stem.replace("_", "-")
    assert all(name.startswith(prefix + "-") for name in names), names


@pytest.mark.parametrize("path", ANALYSIS_SOURCES, ids=lambda p: p.stem)
def test_analysis_notebooks_define_nothing_and_restate_no_paper_number(path):
    """Conclusions are tested functions of `nbforget.analysis`: the notebooks call them, define no
    function and hold none of the paper's numbers or the strategies' names in their code."""
    notebook = load_source(path)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    tree = ast.parse(code)
    defined = [node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert not defined, f"{path}: defines {defined}; put them in nbforget.analysis"
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    for restated in ("vanilla", "multi", "zh-CN", "de-DE", "Latin", "non-Latin", "Romance or Germanic"):
        assert restated not in literals, f"{path}: the literal {restated!r} belongs to the package or the registry"


# --------------------------------------------------------------------------- the grid (slow)


class Grid:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = root / "runs"
        self.book = root / "book"
        self.overrides = {"runs_dir": str(self.runs), "strategies": STRATEGIES}
        self.failures: list[Failure] = []
        self.seconds = float("nan")

    def run_dir(self, strategy: str) -> Path:
        from nbforget.strategies import run_store

        config = load_config(QUICK, {"runs_dir": str(self.runs)})  # the grid's settings, as run identity sees them
        return run_store(config, strategy, 1, 0).path

    def page(self, section: str, name: str) -> Path:
        return self.book / "generated" / section / f"{name}.ipynb"


@pytest.fixture(scope="session")
def grid(data_ready) -> Grid:
    """run_grid over the quick profile with every registered strategy, two workers, once a session.

    Its folder is its own (not under pytest's base temporary folder, which a concurrent pytest
    session may rotate away while this one still reads it) and is removed at the end.
    """
    root = Path(tempfile.mkdtemp(prefix="nbforget-grid-"))
    state = Grid(root)
    started = time.perf_counter()
    state.failures = run_grid(QUICK, overrides=state.overrides, analyses=True, workers=2, progress=False,
                              book_dir=state.book)
    state.seconds = time.perf_counter() - started
    print(f"\nfirst grid: {state.seconds:.0f} s for {len(STRATEGIES)} strategies and the analyses")
    yield state
    shutil.rmtree(root, ignore_errors=True)


def outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            yield cell, output


@pytest.mark.slow
def test_grid_executes_every_notebook_without_failures(grid):
    assert grid.failures == [], "\n".join(str(failure) for failure in grid.failures)
    for strategy in STRATEGIES:
        assert (grid.run_dir(strategy) / "status").read_text().strip() == "complete"
        assert (grid.run_dir(strategy) / RUN_NOTEBOOK).is_file()
        assert grid.page("strategies", strategy).is_file()
    for name in ANALYSES:
        assert grid.page("analyses", name).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_notebook_records_the_run_numbers(grid, strategy):
    """(a) The numbers the notebook computed from the scores match the run's own result.json."""
    run_dir = grid.run_dir(strategy)
    recorded = json.loads((run_dir / SUMMARY_FILE).read_text())
    result = json.loads((run_dir / "result.json").read_text())
    assert recorded["strategy"] == strategy
    for key in ("final_average", "chance", "cbt", "cft", "forgetting", "fwt"):
        expected = result["metrics"].get(key)
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            assert recorded.get(key) is None, f"{strategy}: {key} recorded {recorded.get(key)}, result has none"
        else:
            assert recorded[key] == pytest.approx(expected, abs=TOLERANCE), f"{strategy}: {key}"
    trainable = result["trainable_parameters"]
    assert recorded["params_per_step"] == trainable["max_per_step"]
    assert recorded["params_total"] == trainable["total"]
    assert 0 < recorded["params_distinct"] <= trainable["total"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_page_is_the_first_run_executed_with_injected_parameters(grid, strategy):
    page = grid.page("strategies", strategy)
    notebook = nbformat.read(page, as_version=4)
    injected = notebook.metadata["papermill"]["parameters"]
    assert injected["params_file"] == QUICK and injected["order"] == 1 and injected["seed"] == 0
    assert injected["overrides"]["runs_dir"] == str(grid.runs)
    assert notebook.metadata["papermill"]["input_path"] == f"notebooks/strategies/{strategy}.py"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    kinds = [output.output_type for _, output in outputs(page)]
    assert "error" not in kinds
    section = pages.strategy_section(strategy)
    images = [output for _, output in outputs(page) if "image/png" in output.get("data", {})]
    expected_images = 3 + (section is not None and section.figure is not None)
    assert len(images) >= expected_images, "score matrix, average over time, drift and the section's figures"
    text = "\n".join(str(output.get("data", {}).get("text/markdown", "")) for _, output in outputs(page))
    assert "chance level" in text
    run = analysis.load_run(grid.run_dir(strategy))
    if strategy not in pages.reference_strategies():  # the reference runs went first, so the page compares
        if run.joint:  # no CBT (MULTI LoRA): its final average against MULTI's and VANILLA's
            assert "joint training on the same languages and seed, ends at" in text
            assert "sequential training on the same order and seed, ends at" in text
        else:
            assert "VANILLA's CBT on the same order and seed" in text
    if section is not None:  # what the strategy recorded, read back from its run
        shown = section.text(run, pages.reference_runs(pages.notebook_config(QUICK, grid.overrides), run))
        assert shown in text and "records no" not in shown, shown
        tables = [output for _, output in outputs(page) if "text/html" in output.get("data", {})]
        assert len(tables) >= 3, "metrics, the section's table and versions"
    versions = [output for _, output in outputs(page) if "torch" in str(output.get("data", {}).get("text/plain", ""))]
    assert versions and "run directory" in versions[-1]["data"]["text/plain"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ANALYSES)
def test_analysis_pages_compare_with_the_paper_and_read_every_strategy(grid, name):
    page = grid.page("analyses", name)
    kinds = [output.output_type for _, output in outputs(page)]
    assert "error" not in kinds
    text = "\n".join(str(output.get("data", {}).get("text/markdown", "")) + str(output.get("data", {}).get("text/html", ""))
                     for _, output in outputs(page))
    assert f"{len(STRATEGIES)} complete run(s) of {len(STRATEGIES)} strategies" in text
    assert "Scale." in text and "XLM-R" in text
    assert "paper" in text


@pytest.mark.slow
def test_overview_shows_the_paper_numbers_beside_ours(grid):
    page = grid.page("analyses", "overview")
    html = "\n".join(str(output.get("data", {}).get("text/html", "")) for _, output in outputs(page))
    for paper_number in ("75.03", "0.750", "14,458.27", "-0.08", "0.55"):
        if paper_number in html:
            break
    else:
        pytest.fail("none of the paper's Table 1/2 numbers appears in the overview tables")
    assert "-0.13" in html  # SHARED LoRA r = 32 in Table 2
    markdown = "\n".join(str(output.get("data", {}).get("text/markdown", "")) for _, output in outputs(page))
    assert "VANILLA's CBT here is" in markdown and "(paper: -0.08)" in markdown


@pytest.mark.slow
def test_second_grid_skips_complete_runs_and_executes_nothing(grid):
    """(c) A second call finds every run complete and every page current."""
    notebooks = [grid.run_dir(s) / RUN_NOTEBOOK for s in STRATEGIES]
    notebooks += [grid.page("strategies", s) for s in STRATEGIES] + [grid.page("analyses", n) for n in ANALYSES]
    before = {path: path.stat().st_mtime_ns for path in notebooks}
    started = time.perf_counter()
    failures = run_grid(QUICK, overrides=grid.overrides, analyses=True, workers=2, progress=False, book_dir=grid.book)
    seconds = time.perf_counter() - started
    print(f"\nsecond grid: {seconds:.1f} s (first: {grid.seconds:.0f} s)")
    assert failures == []
    assert {path: path.stat().st_mtime_ns for path in notebooks} == before, "a notebook was executed again"
    assert seconds < max(grid.seconds / 5, 1.0)


@pytest.mark.slow
def test_grid_refreshes_a_missing_book_page_from_the_run_without_executing(grid):
    page = grid.page("strategies", "vanilla")
    run_notebook = grid.run_dir("vanilla") / RUN_NOTEBOOK
    stamp = run_notebook.stat().st_mtime_ns
    page.unlink()
    failures = run_grid(QUICK, overrides=grid.overrides, analyses=False, progress=False, book_dir=grid.book)
    assert failures == []
    assert page.is_file() and run_notebook.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_nbval_lax_runs_every_notebook_with_its_defaults(grid, tmp_path):
    """(b) nbval executes every notebook, default parameters, against the grid's runs."""
    import jupytext

    folder = tmp_path / "converted"
    folder.mkdir()
    for source in STRATEGY_SOURCES + ANALYSIS_SOURCES:
        notebook = load_source(source)
        jupytext.write(notebook, folder / f"{source.parent.name}-{source.stem}.ipynb", fmt="ipynb")
    environment = dict(os.environ, **{RUNS_DIR_ENV: str(grid.runs), "HF_HUB_OFFLINE": "1"})
    results = sorted(grid.runs.glob("quick/*/order-*/seed-*/result.json"))
    before = {path: path.stat().st_mtime_ns for path in results}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=900",
         "-p", "no:cacheprovider", "-q", "-o", "addopts=", "--rootdir", str(folder), str(folder)],
        cwd=folder, env=environment, capture_output=True, text=True, check=False,
    )
    print(f"\nnbval: {time.perf_counter() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    # Nothing was trained again: the strategy notebooks found their runs complete.
    assert len(results) == len(STRATEGIES)
    assert {path: path.stat().st_mtime_ns for path in results} == before


@pytest.mark.slow
def test_executed_pages_build_into_the_book_with_warnings_as_errors(grid, tmp_path):
    from nbforget.publish.book import BOOK_DIR, build_book

    book = tmp_path / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "generated"))
    shutil.copytree(grid.book / "generated", book / "generated")
    html = build_book(book, warnings_as_errors=True)
    for strategy in STRATEGIES:
        page = (html / "generated" / "strategies" / f"{strategy}.html").read_text(encoding="utf-8")
        assert f'id="{strategy.replace("_", "-")}-score-matrix"' in page  # the labelled figure
    overview = (html / "generated" / "analyses" / "overview.html").read_text(encoding="utf-8")
    assert "Overview of the strategies" in overview and "<figcaption" in overview


@pytest.mark.slow
def test_analyses_say_so_when_there_is_no_complete_run(tmp_path, data_ready):
    from nbforget.batch.notebooks import Job, execute_job

    for name in ANALYSES:
        source = NOTEBOOKS / "analyses" / f"{name}.py"
        output = tmp_path / f"{name}.ipynb"
        parameters = {"params_file": QUICK, "runs_dir": str(tmp_path / "no-runs"), "overrides": {}}
        assert execute_job(Job(name, source, output, parameters, cwd=source.parent)) is None
        text = "\n".join(str(output_.get("data", {}).get("text/markdown", "")) for _, output_ in outputs(output))
        assert "0 complete run(s)" in text and "No complete run for" in text
        assert "no complete run" in text.lower() or "no sequential run" in text.lower()


# --------------------------------------------------------------------------- failures


@pytest.mark.slow
def test_failed_notebooks_are_collected_and_the_others_still_run(tmp_path, data_ready):
    notebooks = tmp_path / "notebooks"
    (notebooks / "strategies").mkdir(parents=True)
    (notebooks / "analyses").mkdir(parents=True)
    header = '# %% tags=["parameters"]\nparams_file = "x"\norder = None\nseed = None\noverrides = {}\n\n'
    (notebooks / "strategies" / "vanilla.py").write_text(header + '# %%\nraise RuntimeError("deliberate failure")\n')
    analysis_header = '# %% tags=["parameters"]\nparams_file = "x"\nruns_dir = None\noverrides = {}\n\n'
    (notebooks / "analyses" / "fine.py").write_text(analysis_header + "# %%\nprint('fine')\n")
    (notebooks / "analyses" / "broken.py").write_text(analysis_header + "# %%\n1 / 0\n")
    book = tmp_path / "book"
    failures = run_grid(QUICK, overrides={"runs_dir": str(tmp_path / "runs"), "strategies": ["vanilla", "mono"]},
                        progress=False, book_dir=book, notebooks_dir=notebooks)
    by_source = {failure.notebook.name: failure for failure in failures}
    assert set(by_source) == {"vanilla.py", "mono.py", "broken.py"}
    assert "deliberate failure" in by_source["vanilla.py"].error
    assert "no notebook" in by_source["mono.py"].error
    assert "ZeroDivisionError" in by_source["broken.py"].error
    kept = by_source["vanilla.py"].output
    assert kept is not None and kept.name == "notebook.failed.ipynb" and kept.is_file()
    assert not (kept.parent / RUN_NOTEBOOK).exists()
    assert (book / "generated" / "analyses" / "fine.ipynb").is_file()
    assert not (book / "generated" / "analyses" / "broken.ipynb").exists()
    assert not (book / "generated" / "strategies" / "vanilla.ipynb").exists()


def test_cli_grid_exits_non_zero_when_a_notebook_failed(monkeypatch):
    import nbforget.batch.grid
    from nbforget.cli import main

    monkeypatch.setattr(nbforget.batch.grid, "run_grid",
                        lambda *args, **kwargs: [Failure(Path("notebooks/strategies/x.py"), None, "boom")])
    assert main(["grid", "--params", QUICK, "--quiet"]) == 1
    monkeypatch.setattr(nbforget.batch.grid, "run_grid", lambda *args, **kwargs: [])
    assert main(["grid", "--params", QUICK, "--quiet"]) == 0


def test_make_book_calls_the_book_build_after_the_grid(monkeypatch, tmp_path):
    import nbforget.batch.grid
    import nbforget.publish
    import nbforget.publish.book

    calls = []
    monkeypatch.setattr(nbforget.batch.grid, "run_grid", lambda *args, **kwargs: calls.append(("grid", kwargs)) or [])
    monkeypatch.setattr(nbforget.publish.book, "build_book", lambda book_dir: calls.append(("book", book_dir)) or tmp_path)
    assert nbforget.publish.make_book(QUICK, {"train": {"epochs": 1}}, 2, book_dir=tmp_path) == tmp_path
    assert [name for name, _ in calls] == ["grid", "book"]
    assert calls[0][1]["workers"] == 2 and calls[0][1]["overrides"] == {"train": {"epochs": 1}}


def test_make_book_refuses_to_build_after_failures(monkeypatch, tmp_path):
    import nbforget.batch.grid
    import nbforget.publish
    from nbforget import NbforgetError

    monkeypatch.setattr(nbforget.batch.grid, "run_grid",
                        lambda *args, **kwargs: [Failure(Path("notebooks/analyses/x.py"), None, "boom")])
    with pytest.raises(NbforgetError, match="x.py: boom"):
        nbforget.publish.make_book(QUICK, book_dir=tmp_path)
