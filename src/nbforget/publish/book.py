"""The results book: its table of contents, its build, and what it needs to read offline.

    make_toc(book_dir)         the table of contents for the notebooks executed so far (a dict)
    write_toc(book_dir)        write it to book/generated/_toc.yml and return the path
    build_book(book_dir)       `jupyter-book build` with warnings as errors; returns the HTML folder
    external_assets(html_dir)  the remote scripts, stylesheets, images, ... the built pages load
    serve_book(html_dir)       serve the built book on 127.0.0.1 (a context manager giving the URL)
    setup(app)                 Sphinx extension: MathJax from the book's own _static folder, one
                               copy of each script per page, (Author et al., 2025) citations

Papermill writes the executed notebooks to ``book/generated/strategies/<name>.ipynb`` and
``book/generated/analyses/<name>.ipynb`` (ignored by git). The set of strategies grows, so the
table of contents is generated from that folder at build time and passed to jupyter-book with
``--toc``; the committed ``book/_toc.yml`` stays the minimal one (introduction and method) that
builds before any notebook exists.

The book reads offline: ``book/_config.yml`` turns off every launch, repository and comment
button and the widget JavaScript that would come from a CDN, and points Sphinx's ``mathjax_path``
at ``_static/mathjax/tex-chtml.js``. This module, loaded by Sphinx as an extension, copies MathJax
3 there from the installed ``django-static-mathjax`` distribution (a PyPI package that ships the
MathJax release files; nothing of Django is imported). `external_assets` checks the result.

Why not the Jupyter project's own package. ``jupyter-server-mathjax`` (0.2.6, the latest on PyPI)
ships MathJax 2.7.9, the last release of MathJax 2, trimmed to one combined configuration
(``config/TeX-AMS-MML_HTMLorMML-full.js``), the HTML-CSS and SVG outputs and the STIX-Web fonts:
there is no ``tex-chtml.js``, MathJax 3's entry point. Tried on this book's method page (86
formulas; Sphinx 7.4, myst-parser, headless Chromium) with ``mathjax_path:
mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full``: the formulas typeset only once
``_config.yml`` also set ``mathjax2_config`` with ``tex2jax.processClass`` (myst-parser writes
that class list into ``mathjax3_config`` alone under Sphinx 4 and later, while marking each
page's top section ``tex2jax_ignore``) and HTML-CSS ``webFont: STIX-Web`` (without it MathJax 2
asks for TeX font data the package lacks and sets the formulas in a fallback serif, out of
place). Even then the page logged four console errors (404s for TeX ``.otf`` fonts, a blocked
font probe), which the browser check counts as failures, inline formulas sat above the text
baseline, and `nbforget.publish.browser` waits on ``MathJax.startup.promise`` and counts
``mjx-container`` elements, MathJax 3's interface. The book therefore keeps MathJax 3.2.2 from
``django-static-mathjax``, which typesets the same page with no console error. (JupyterLab 4 has
MathJax 3 only inside its webpack bundles, with no entry point a page can load.)
"""
from __future__ import annotations

import functools
import html.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

import nbforget
from nbforget import NbforgetError

__all__ = [
    "BOOK_DIR",
    "ANALYSIS_ORDER",
    "generated_notebooks",
    "make_toc",
    "write_toc",
    "build_book",
    "external_assets",
    "serve_book",
    "install_mathjax",
    "setup",
]

REPO = Path(__file__).resolve().parents[3]
BOOK_DIR = REPO / "book"
GENERATED = "generated"  # folder of executed notebooks, relative to the book
SECTIONS = {"strategies": "Strategies", "analyses": "Analyses"}  # generated subfolder -> caption
ANALYSIS_ORDER = ("overview", "script", "family", "vitality", "models")  # the rest follow, sorted
LOG_TAIL_LINES = 60
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_PROBLEM = re.compile(r"\b(?:WARNING|ERROR|CRITICAL|SEVERE):|^Traceback|^\w+(?:Error|Exception)\b")

MATHJAX_DISTRIBUTION = "django-static-mathjax"
MATHJAX_ROOT = "mathjax/static/mathjax"  # inside the distribution
# What tex-chtml.js loads: itself, the TeX extensions it autoloads, the CHTML fonts, and the
# menu's optional accessibility parts (explorer, speech rules): about 7 MB of the 35 MB package.
MATHJAX_PARTS = (
    "es5/tex-chtml.js",
    "es5/input/tex/extensions",
    "es5/output/chtml/fonts/woff-v2",
    "es5/ui",
    "es5/a11y",
    "es5/sre",
)


# ---------------------------------------------------------------------------------------------
# table of contents
# ---------------------------------------------------------------------------------------------


def _analysis_key(name: str) -> tuple[int, str]:
    rank = ANALYSIS_ORDER.index(name) if name in ANALYSIS_ORDER else len(ANALYSIS_ORDER)
    return rank, name


def generated_notebooks(book_dir: Path = BOOK_DIR) -> dict[str, list[str]]:
    """The executed notebooks in ``book_dir/generated``, per section, in page order.

    Returns ``{"strategies": [...], "analyses": [...]}`` with notebook names (no suffix):
    strategies sorted by name; analyses with overview, script, family, vitality and models first, then
    the others sorted by name. Hidden files and names starting with ``_`` are skipped.
    """
    found: dict[str, list[str]] = {}
    for section in SECTIONS:
        folder = Path(book_dir) / GENERATED / section
        names = [
            path.stem
            for path in folder.glob("*.ipynb")
            if path.is_file() and not path.name.startswith((".", "_"))
        ]
        found[section] = sorted(names, key=_analysis_key if section == "analyses" else str)
    return found


def make_toc(book_dir: Path = BOOK_DIR) -> dict:
    """The jupyter-book table of contents: introduction, method, then one page per notebook.

    A section with no executed notebook is left out (an empty section is not valid).
    """
    parts: list[dict] = [{"chapters": [{"file": "method"}]}]  # no caption: a one-page section
    for section, names in generated_notebooks(book_dir).items():
        if names:
            chapters = [{"file": f"{GENERATED}/{section}/{name}"} for name in names]
            parts.append({"caption": SECTIONS[section], "chapters": chapters})
    return {"format": "jb-book", "root": "intro", "parts": parts}


def write_toc(book_dir: Path = BOOK_DIR) -> Path:
    """Write `make_toc` to ``book_dir/generated/_toc.yml`` (git-ignored) and return its path."""
    path = Path(book_dir) / GENERATED / "_toc.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by nbforget.publish.book.write_toc from the notebooks in this folder; do not edit.\n"
    path.write_text(header + yaml.safe_dump(make_toc(book_dir), sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------


def build_book(
    book_dir: Path = BOOK_DIR, *, warnings_as_errors: bool = True, fresh: bool = False
) -> Path:
    """Build the book as static HTML and return the HTML folder (``book_dir/_build/html``).

    Runs ``jupyter-book build book_dir --toc book_dir/generated/_toc.yml --keep-going`` (plus
    ``-W`` when `warnings_as_errors`) in a subprocess of this Python. Nothing is executed:
    notebooks must already be in ``book_dir/generated``. The full log is written to
    ``book_dir/_build/build.log``; a failed build raises `NbforgetError` with the warnings and
    the last lines of the log.

    Builds are incremental: Sphinx rereads only changed pages, and so reports only their
    warnings. So that a page with a warning cannot slip through a second time, a strict build
    rereads every page (``--all``) unless the previous build was strict and passed; `fresh`
    forces that too.
    """
    book_dir = Path(book_dir).resolve()
    for required in ("_config.yml", "intro.md", "method.md"):
        if not (book_dir / required).is_file():
            raise NbforgetError(
                f"{book_dir / required} does not exist; build_book needs a book folder with "
                "_config.yml, intro.md and method.md (the repository's book/)"
            )
    toc = write_toc(book_dir)
    passed_stamp = book_dir / "_build" / ".strict-build-passed"
    fresh = fresh or (warnings_as_errors and not passed_stamp.is_file())
    passed_stamp.unlink(missing_ok=True)
    command = [
        sys.executable, "-c",
        "from jupyter_book.cli.main import main; main(prog_name='jupyter-book')",
        "build", str(book_dir), "--toc", str(toc), "--builder", "html", "--keep-going",
    ]
    if warnings_as_errors:
        command.append("-W")
    if fresh:
        command.append("--all")
    # The book loads this module as a Sphinx extension: make sure the build can import it.
    package_parent = str(Path(nbforget.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"  # a plain-text log
    result = subprocess.run(
        command, cwd=book_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, check=False,
    )
    log = book_dir / "_build" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    output = _ANSI_ESCAPE.sub("", result.stdout)
    log.write_text(output, encoding="utf-8")
    html_dir = book_dir / "_build" / "html"
    if result.returncode != 0 or not (html_dir / "index.html").is_file():
        kind = "with warnings treated as errors " if warnings_as_errors else ""
        raise NbforgetError(
            f"building the book in {book_dir} {kind}failed (exit code {result.returncode}); "
            f"fix the pages named below (full log: {log}).\n{_summarize_log(output)}"
        )
    if warnings_as_errors:
        passed_stamp.touch()
    return html_dir


def _summarize_log(output: str) -> str:
    """The warning and error lines of a build log (they name page and line), then its tail."""
    lines = output.rstrip().splitlines()
    problems = [line for line in lines if _PROBLEM.search(line)]
    tail = "\n".join(lines[-LOG_TAIL_LINES:] if not problems else lines[-15:])
    if not problems:
        return f"last lines of the log:\n{tail}"
    shown = "\n".join(problems[:40])
    more = f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
    return f"warnings and errors ({len(problems)}):\n{shown}{more}\nlast lines of the log:\n{tail}"


# ---------------------------------------------------------------------------------------------
# offline reading
# ---------------------------------------------------------------------------------------------

_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)  # http://, https://, //host
# Attributes through which a page loads something (links to other sites are not loads).
_LOADING_ATTRIBUTES = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "input": ("src",),
}
_LOADING_LINK_RELS = {
    "stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "icon",
    "shortcut", "apple-touch-icon", "manifest", "mask-icon",
}
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.IGNORECASE)


class _AssetParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link":
            rels = set(values.get("rel", "").lower().split())
            if rels & _LOADING_LINK_RELS and values.get("href"):
                self.urls.append((tag, "href", values["href"]))
            return
        for attribute in _LOADING_ATTRIBUTES.get(tag, ()):
            value = values.get(attribute, "")
            candidates = [part.split()[0] for part in value.split(",") if part.strip()] \
                if attribute == "srcset" else [value]
            for url in candidates:
                if url:
                    self.urls.append((tag, attribute, url))


def external_assets(html_dir: Path) -> list[str]:
    """Everything the built book would load from another host, one ``"page: what"`` per entry.

    Scans every ``*.html`` page for scripts, stylesheets and other ``<link>`` loads, images,
    frames and media whose URL is remote (``http://``, ``https://`` or ``//host``), and every
    ``*.css`` file for remote ``url(...)`` and ``@import``. Hyperlinks to other sites are not
    loads and are not listed. An empty list means the pages read offline as far as their markup
    goes (scripts that fetch at run time are outside its reach; the browser test covers those).
    """
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        raise NbforgetError(f"{html_dir} is not a folder; build the book first (build_book)")
    found: set[str] = set()
    for page in sorted(html_dir.rglob("*.html")):
        parser = _AssetParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        relative = page.relative_to(html_dir).as_posix()
        for tag, attribute, url in parser.urls:
            if _REMOTE.match(url.strip()):
                found.add(f"{relative}: <{tag} {attribute}={url}>")
    for stylesheet in sorted(html_dir.rglob("*.css")):
        text = stylesheet.read_text(encoding="utf-8", errors="replace")
        relative = stylesheet.relative_to(html_dir).as_posix()
        for url in _CSS_URL.findall(text):
            if _REMOTE.match(url.strip()):
                found.add(f"{relative}: url({url})")
    return sorted(found)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that closes a connection early (e.g. after a 404 for favicon.ico) is normal.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_book(html_dir: Path, port: int = 0) -> Iterator[str]:
    """Serve `html_dir` over HTTP on 127.0.0.1 in a background thread; yields the base URL.

    ``port=0`` picks a free port. The server stops when the ``with`` block ends.
    """
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise NbforgetError(f"{html_dir} has no index.html; build the book first (build_book)")
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = _QuietServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="serve_book", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------
# MathJax, as a Sphinx extension
# ---------------------------------------------------------------------------------------------


def _mathjax_source() -> tuple[Path, str]:
    """The MathJax release folder inside the installed distribution, and its version."""
    try:
        distribution = importlib.metadata.distribution(MATHJAX_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise NbforgetError(
            f"MathJax for the offline book comes from the PyPI package {MATHJAX_DISTRIBUTION}, "
            f"which is not installed in {sys.prefix}; install the development extras "
            "(pip install -e '.[dev]') or the package itself"
        ) from None
    root = Path(distribution.locate_file(MATHJAX_ROOT))
    if not (root / MATHJAX_PARTS[0]).is_file():
        raise NbforgetError(
            f"{MATHJAX_DISTRIBUTION} {distribution.version} has no {MATHJAX_PARTS[0]} under "
            f"{root}; reinstall it (pip install --force-reinstall {MATHJAX_DISTRIBUTION})"
        )
    return root, distribution.version


def install_mathjax(target: Path) -> Path:
    """Copy MathJax's ``tex-chtml.js`` and what it loads into `target`; return the script's path.

    Does nothing when `target` already holds the same version. The layout under `target` is the
    release's ``es5/`` folder, so MathJax finds its fonts and extensions next to the script.
    """
    source, version = _mathjax_source()
    target = Path(target)
    stamp = target / "VERSION"
    script = target / "tex-chtml.js"
    if script.is_file() and stamp.is_file() and stamp.read_text().strip() == version:
        return script
    if target.exists():
        shutil.rmtree(target)
    for part in MATHJAX_PARTS:
        origin = source / part
        destination = target / Path(part).relative_to("es5")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination)
        else:
            shutil.copy2(origin, destination)
    shutil.copy2(source / "LICENSE", target / "LICENSE")
    stamp.write_text(version + "\n")
    return script


def _install_mathjax_for_html(app) -> None:
    if getattr(app.builder, "format", None) == "html":
        install_mathjax(Path(app.outdir) / "_static" / "mathjax")


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep one copy of each script on the page.

    Sphinx 7 registers an inline script added after the builder starts twice (once with the
    file name None, once with ""), so sphinx-thebe's ``const THEBE_JS_URL = ...`` appears twice
    and the second copy is a JavaScript error on every page.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set = set()
    unique = []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        key = (str(filename), attributes)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _register_round_author_year() -> None:
    """Citation style ``author_year_round``: (Khelli et al., 2025) and Khelli et al. (2025)."""
    from dataclasses import dataclass, field

    import sphinxcontrib.bibtex.plugin
    from sphinxcontrib.bibtex.style.referencing import BracketStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    def round_brackets() -> BracketStyle:
        return BracketStyle(left="(", right=")")

    @dataclass
    class RoundAuthorYearReferenceStyle(AuthorYearReferenceStyle):
        bracket_parenthetical: BracketStyle = field(default_factory=round_brackets)
        bracket_textual: BracketStyle = field(default_factory=round_brackets)
        bracket_author: BracketStyle = field(default_factory=round_brackets)
        bracket_label: BracketStyle = field(default_factory=round_brackets)
        bracket_year: BracketStyle = field(default_factory=round_brackets)

    sphinxcontrib.bibtex.plugin.register_plugin(
        "sphinxcontrib.bibtex.style.referencing", "author_year_round",
        RoundAuthorYearReferenceStyle, force=True,
    )


def setup(app) -> dict:
    """Sphinx entry point (``sphinx.extra_extensions: [nbforget.publish.book]`` in ``_config.yml``)."""
    _register_round_author_year()
    app.connect("builder-inited", _install_mathjax_for_html)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"version": nbforget.__version__, "parallel_read_safe": True, "parallel_write_safe": True}
