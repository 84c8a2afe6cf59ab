"""Tests for nbforget.publish.book: the generated table of contents, the build gate, offline reading.

The slow tests build a temporary copy of book/ with one small executed notebook in
generated/analyses/overview.ipynb, then check the HTML, the absence of remote assets, and the
pages in headless Chromium (skipped when Chromium or its driver is not installed). Screenshots
go to test-artifacts/ at the repository root.
"""
from __future__ import annotations

import base64
import io
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from nbforget import NbforgetError
from nbforget.publish.browser import (
    PageCheck,
    book_pages,
    browser_available,
    check_book,
    chromium_paths,
    inspect_page,
    open_page,
    report,
    start_browser,
)
from nbforget.publish.book import (
    BOOK_DIR,
    REPO,
    build_book,
    external_assets,
    generated_notebooks,
    make_toc,
    serve_book,
    write_toc,
)

ARTIFACTS = REPO / "test-artifacts"
OVERVIEW_TITLE = "Overview of the strategies"


# --------------------------------------------------------------------------- helpers


def touch_notebooks(book_dir: Path, section: str, names: list[str]) -> None:
    folder = book_dir / "generated" / section
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.ipynb").write_text("{}")


def figure_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot([0, 1, 2, 3], [0.8, 0.7, 0.65, 0.6], marker="o")
    ax.set_xlabel("languages trained")
    ax.set_ylabel("average score over seen languages")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


WIDGET_MODEL = "3f0c6a8e2b5d4c1f9e7a6b5c4d3e2f10"


def executed_notebook(title: str, *, extra_markdown: str = ""):
    """A small notebook as papermill leaves it: a title, prose with math, a progress-bar widget
    (what tqdm.auto leaves, with its saved widget state) and a figure output."""
    import nbformat
    from nbformat import v4

    png = base64.b64encode(figure_png()).decode("ascii")
    progress = v4.new_code_cell(
        "scores = train_all(config)",
        execution_count=1,
        outputs=[
            v4.new_output(
                "display_data",
                data={
                    "application/vnd.jupyter.widget-view+json": {
                        "model_id": WIDGET_MODEL, "version_major": 2, "version_minor": 0,
                    },
                    "text/plain": "training: 100%|##########| 3/3 [00:01<00:00,  2.00it/s]",
                },
                metadata={},
            )
        ],
    )
    code = v4.new_code_cell(
        "fig = plot_average_seen(scores)\nfig",
        execution_count=2,
        outputs=[
            v4.new_output(
                "display_data",
                data={"image/png": png, "text/plain": "<Figure size 320x240 with 1 Axes>"},
                metadata={},
            )
        ],
    )
    notebook = v4.new_notebook(
        cells=[
            v4.new_markdown_cell(
                f"# {title}\n\nThe average score $P_i$ over the languages seen after step $i$."
                + extra_markdown
            ),
            progress,
            code,
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "pygments_lexer": "ipython3"},
            "widgets": {
                "application/vnd.jupyter.widget-state+json": {
                    "state": {
                        WIDGET_MODEL: {
                            "model_module": "@jupyter-widgets/controls",
                            "model_module_version": "1.5.0",
                            "model_name": "HTMLModel",
                            "state": {"value": "training: 100%"},
                        }
                    },
                    "version_major": 2,
                    "version_minor": 0,
                }
            },
        },
    )
    nbformat.validate(notebook)
    return notebook


def copy_book(destination: Path) -> Path:
    book = destination / "book"
    shutil.copytree(BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "generated"))
    return book


def write_notebook(book: Path, section: str, name: str, notebook) -> Path:
    import nbformat

    path = book / "generated" / section / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


# --------------------------------------------------------------------------- table of contents


def test_toc_without_notebooks_is_introduction_and_method(tmp_path):
    assert make_toc(tmp_path) == {
        "format": "jb-book",
        "root": "intro",
        "parts": [{"chapters": [{"file": "method"}]}],
    }


def test_committed_toc_is_the_toc_without_notebooks(tmp_path):
    import yaml

    committed = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())
    assert committed == make_toc(tmp_path)


def test_toc_orders_strategies_by_name_and_analyses_overview_script_family_vitality_models_first(tmp_path):
    touch_notebooks(tmp_path, "strategies", ["vanilla", "multi", "shared_lora", "mono"])
    touch_notebooks(tmp_path, "analyses", ["zeta", "vitality", "models", "family", "overview", "alpha", "script"])
    (tmp_path / "generated" / "analyses" / ".hidden.ipynb").write_text("{}")
    (tmp_path / "generated" / "analyses" / "notes.txt").write_text("")

    assert generated_notebooks(tmp_path) == {
        "strategies": ["mono", "multi", "shared_lora", "vanilla"],
        "analyses": ["overview", "script", "family", "vitality", "models", "alpha", "zeta"],
    }
    parts = make_toc(tmp_path)["parts"]
    assert [part.get("caption") for part in parts] == [None, "Strategies", "Analyses"]
    assert parts[1]["chapters"][0] == {"file": "generated/strategies/mono"}
    assert parts[2]["chapters"][-1] == {"file": "generated/analyses/zeta"}


def test_toc_leaves_out_an_empty_section(tmp_path):
    touch_notebooks(tmp_path, "analyses", ["overview"])
    parts = make_toc(tmp_path)["parts"]
    assert [part.get("caption") for part in parts] == [None, "Analyses"]


def test_write_toc_writes_a_valid_jupyter_book_toc_into_generated(tmp_path):
    from sphinx_external_toc.parsing import parse_toc_yaml

    touch_notebooks(tmp_path, "strategies", ["vanilla"])
    path = write_toc(tmp_path)
    assert path == tmp_path / "generated" / "_toc.yml"
    site_map = parse_toc_yaml(path)
    assert site_map.root.docname == "intro"
    assert "generated/strategies/vanilla" in site_map


# --------------------------------------------------------------------------- offline checks


def test_external_assets_lists_remote_loads_and_not_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://cdn.example.org/lib.js"></script>'
        '<script src="_static/local.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/font.css">'
        '<link rel="canonical" href="https://example.org/book/">'
        "</head><body>"
        '<a href="https://arxiv.org/abs/2504.20356">a paper</a>'
        '<img src="data:image/png;base64,AAAA"><img srcset="a.png 1x, https://img.example.org/b.png 2x">'
        "</body></html>"
    )
    (tmp_path / "sub" / "style.css").write_text(
        "@import 'https://fonts.example.org/x.css'; .a { background: url(../img/local.png); }"
    )
    assert external_assets(tmp_path) == [
        "index.html: <img srcset=https://img.example.org/b.png>",
        "index.html: <link href=//fonts.example.org/font.css>",
        "index.html: <script src=https://cdn.example.org/lib.js>",
        "sub/style.css: url(https://fonts.example.org/x.css)",
    ]


def test_serve_book_serves_the_folder_on_localhost_and_stops(tmp_path):
    (tmp_path / "index.html").write_text("<html><body>served</body></html>")
    with serve_book(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "index.html", timeout=10) as response:
            assert b"served" in response.read()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "index.html", timeout=2)


def test_serve_book_needs_a_built_book(tmp_path):
    with pytest.raises(NbforgetError, match="build the book first"):
        with serve_book(tmp_path):
            pass


def test_install_mathjax_copies_the_script_and_its_fonts_once(tmp_path):
    from nbforget.publish.book import install_mathjax

    script = install_mathjax(tmp_path / "mathjax")
    assert script == tmp_path / "mathjax" / "tex-chtml.js" and script.stat().st_size > 100_000
    # MathJax 3: book/_config.yml's mathjax_path and the browser check's MathJax.startup need it
    assert 'VERSION="3.' in script.read_text(encoding="utf-8")
    fonts = list((tmp_path / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert fonts
    assert (tmp_path / "mathjax" / "LICENSE").is_file()
    modified = script.stat().st_mtime_ns
    assert install_mathjax(tmp_path / "mathjax") == script
    assert script.stat().st_mtime_ns == modified  # the same version is not copied again


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """A copy of book/ with one executed analysis notebook, built with warnings as errors."""
    book = copy_book(tmp_path_factory.mktemp("book"))
    write_notebook(book, "analyses", "overview", executed_notebook(OVERVIEW_TITLE))
    start = time.perf_counter()
    html_dir = build_book(book, warnings_as_errors=True)
    print(f"book build: {time.perf_counter() - start:.1f} s")
    return html_dir


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors_and_has_the_notebook_page(built_book):
    page = built_book / "generated" / "analyses" / "overview.html"
    assert page.is_file()
    text = page.read_text(encoding="utf-8")
    assert OVERVIEW_TITLE in text
    assert "<img" in text and "_images/" in text  # the figure output became an image file
    assert "training: 100%|##########| 3/3" in text  # a widget shows its text, not a script
    images = list((built_book / "_images").glob("*.png"))
    assert images and all(image.stat().st_size > 0 for image in images)
    intro = (built_book / "intro.html").read_text(encoding="utf-8")
    assert "generated/analyses/overview.html" in intro  # the navigation lists the page
    assert "Analyses" in intro
    method = (built_book / "method.html").read_text(encoding="utf-8")
    assert "Khelli" in method  # the bibliography rendered
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()


@pytest.mark.slow
def test_built_book_loads_nothing_from_other_hosts(built_book):
    assert external_assets(built_book) == []


@pytest.mark.slow
def test_a_warning_fails_the_build_and_the_error_shows_it(tmp_path):
    book = copy_book(tmp_path)
    broken = executed_notebook("Broken", extra_markdown="\n\nSee {ref}`no-such-label`.")
    write_notebook(book, "analyses", "broken", broken)
    with pytest.raises(NbforgetError, match="no-such-label") as error:
        build_book(book)
    assert "build.log" in str(error.value)
    # Sphinx rereads only changed pages; the failed page must still fail the next build.
    with pytest.raises(NbforgetError, match="no-such-label"):
        build_book(book)


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not browser_available():
        chromium, driver = chromium_paths()
        pytest.skip(f"the browser test needs Chromium at {chromium} and its driver at {driver} "
                    "(Debian: apt-get install -y chromium chromium-driver)")
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def check_page(driver, base_url: str, name: str) -> None:
    """The open page: every image loaded, math (if any) typeset, nothing fetched from another
    host, no console errors; a screenshot in test-artifacts/."""
    result = inspect_page(driver, base_url, driver.current_url.removeprefix(base_url),
                          ARTIFACTS / f"book-{name}.png")
    assert result.ok, f"{name}: {result.problems}"


@pytest.mark.slow
def test_book_renders_in_a_headless_browser(built_book, browser):
    from selenium.webdriver.common.by import By

    with serve_book(built_book) as base_url:
        open_page(browser, base_url + "index.html")  # redirects to the introduction
        assert browser.current_url.endswith("intro.html")
        assert browser.find_element(By.CSS_SELECTOR, "article h1").text.startswith(
            "Forgetting across languages")
        check_page(browser, base_url, "intro")

        open_page(browser, base_url + "method.html")
        assert browser.find_element(By.CSS_SELECTOR, "article h1").text.startswith("Method")
        assert browser.find_elements(By.CSS_SELECTOR, "mjx-container")
        check_page(browser, base_url, "method")

        open_page(browser, base_url + "generated/analyses/overview.html")
        assert browser.find_element(By.CSS_SELECTOR, "article h1").text.startswith(OVERVIEW_TITLE)
        images = browser.find_elements(By.CSS_SELECTOR, "article img")
        assert images, "the notebook's figure is missing from the page"
        check_page(browser, base_url, "overview")



@pytest.mark.slow
def test_check_book_opens_every_page_and_finds_them_all_rendered(built_book, browser, tmp_path):
    pages = book_pages(built_book)
    assert {"intro.html", "method.html", "generated/analyses/overview.html"} <= set(pages)
    results = check_book(built_book, screenshots=tmp_path / "shots", progress=False)
    assert [result.page for result in results] == pages
    assert all(result.ok for result in results), report(results)
    overview = next(result for result in results if result.page == "generated/analyses/overview.html")
    assert overview.images >= 1
    method = next(result for result in results if result.page == "method.html")
    assert method.math > 0
    assert all(result.screenshot.is_file() and result.screenshot.stat().st_size > 1000 for result in results)
    assert report(results).endswith(f"{len(pages)} of {len(pages)} pages render")


@pytest.mark.slow
def test_check_book_reports_a_broken_figure(built_book, browser, tmp_path):
    broken = tmp_path / "html"
    shutil.copytree(built_book, broken)
    page = broken / "generated" / "analyses" / "overview.html"
    page.write_text(page.read_text(encoding="utf-8").replace("_images/", "_images/missing-"), encoding="utf-8")
    results = {result.page: result for result in check_book(broken, progress=False)}
    overview = results["generated/analyses/overview.html"]
    assert not overview.ok and any("images that did not load" in problem for problem in overview.problems)
    assert results["intro.html"].ok
    assert "FAIL  generated/analyses/overview.html" in report(list(results.values()))


def test_book_pages_leave_out_static_files_search_and_the_redirect(tmp_path):
    for name in ("index.html", "intro.html", "search.html", "genindex.html", "_static/x.html",
                 "generated/analyses/overview.html", "_sources/intro.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<html></html>")
    assert book_pages(tmp_path) == ["generated/analyses/overview.html", "intro.html"]


def test_check_book_needs_pages(tmp_path):
    with pytest.raises(NbforgetError, match="holds no book pages; build the book first"):
        check_book(tmp_path, progress=False)


def test_cli_book_check_exits_non_zero_when_a_page_fails(monkeypatch, tmp_path, capsys):
    import nbforget.publish
    from nbforget import cli
    from nbforget.publish import browser

    html = tmp_path / "_build" / "html"
    html.mkdir(parents=True)
    monkeypatch.setattr(nbforget.publish, "make_book", lambda *args, **kwargs: html)
    outcome = [PageCheck("intro.html", images=1), PageCheck("method.html", math=3)]
    monkeypatch.setattr(browser, "check_book", lambda *args, **kwargs: outcome)
    assert cli.main(["book", "--check", "--quiet"]) == 0
    assert "2 of 2 pages render" in capsys.readouterr().out
    outcome[1].problems.append("MathJax reported 2 TeX errors")
    assert cli.main(["book", "--check", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  method.html" in out and "MathJax reported 2 TeX errors" in out and "1 do not" in out
