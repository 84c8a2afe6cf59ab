"""What the notebooks need besides the science: parameters, provenance and recorded numbers.

    RUNS_DIR_ENV                  ``NBFORGET_RUNS_DIR``: where runs are read and written when set
    notebook_config(params_file, overrides, runs_dir=None) -> RunConfig
    versions(packages=...)        installed versions of the stack, python included
    versions_table(run_dir=None)  the same as a one-column DataFrame, with the run directory read
    record_summary(run_dir, summary) -> Path   write ``notebook_summary.json`` into a run directory
    read_summary(run_dir) -> dict

Importing this module also sets what every notebook wants for display: pandas shows table
cells in full, and tqdm's note that progress bars fall back to text is not repeated on every
page.

A notebook's parameters cell holds literals only (papermill injects its own cell right after
it), so everything derived from the parameters goes through `notebook_config`. Paths of params
files are resolved against the repository root, so a notebook runs from the repository root or
from its own folder alike.

Where runs live, by precedence: a ``runs_dir`` given to the notebook (its parameter, or
``overrides["runs_dir"]``), then the environment variable ``NBFORGET_RUNS_DIR``, then the
profile's ``runs_dir``. The variable lets a whole batch of notebooks run with their default
parameters against another folder (the notebook tests do this), without editing them.
"""
from __future__ import annotations

import json
import os
import platform
import warnings
from pathlib import Path

from nbforget.config import REPO_ROOT, RunConfig, display_path, load_config

__all__ = [
    "RUNS_DIR_ENV",
    "SUMMARY_FILE",
    "notebook_config",
    "resolve_params_file",
    "versions",
    "versions_table",
    "record_summary",
    "read_summary",
]

# Progress bars in a kernel without ipywidgets fall back to text; tqdm says so on every import,
# which would print the same warning on every page of the book.
warnings.filterwarnings("ignore", message="IProgress not found")


def _show_tables_in_full() -> None:
    """Table cells in full: a page of the book cannot widen a cell pandas cut at 50 characters."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return
    pd.set_option("display.max_colwidth", None)


_show_tables_in_full()

RUNS_DIR_ENV = "NBFORGET_RUNS_DIR"
SUMMARY_FILE = "notebook_summary.json"
STACK = ("nbforget", "torch", "transformers", "peft", "numpy", "pandas", "matplotlib", "seaborn")


def resolve_params_file(params_file: str | Path) -> Path:
    """`params_file` as an absolute path: as given when it exists, else relative to the repository."""
    path = Path(params_file)
    if path.is_absolute() or path.exists():
        return path.resolve()
    return REPO_ROOT / path


def notebook_config(params_file: str | Path, overrides: dict | None = None, *,
                    runs_dir: str | Path | None = None) -> RunConfig:
    """The run configuration of a notebook: profile, then overrides, then where runs live.

    ``runs_dir`` (or ``overrides["runs_dir"]``) wins over ``NBFORGET_RUNS_DIR``, which wins over
    the profile. Relative paths are relative to the repository root.
    """
    merged = dict(overrides or {})
    if runs_dir is not None:
        merged["runs_dir"] = str(runs_dir)
    elif "runs_dir" not in merged and os.environ.get(RUNS_DIR_ENV):
        merged["runs_dir"] = os.environ[RUNS_DIR_ENV]
    return load_config(resolve_params_file(params_file), merged or None)


def versions(packages: tuple[str, ...] = STACK) -> dict[str, str | None]:
    """Installed versions of `packages`, with python first; None where a package is missing."""
    import importlib.metadata as metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def versions_table(run_dir: str | Path | None = None, **extra: object):
    """Versions of the stack as a table, plus the run directory the notebook read and `extra`."""
    import pandas as pd

    rows = {name: (value or "not installed") for name, value in versions().items()}
    if run_dir is not None:
        rows["run directory"] = display_path(run_dir)
    rows.update({name: str(value) for name, value in extra.items()})
    return pd.DataFrame({"value": rows}).rename_axis("")


def record_summary(run_dir: str | Path, summary: dict) -> Path:
    """Write the numbers a notebook computed to ``<run_dir>/notebook_summary.json``.

    Tests compare them with the run's own ``result.json``; values must be JSON numbers, strings
    or None (NaN is written as None).
    """
    import math

    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    path = Path(run_dir) / SUMMARY_FILE
    temporary = path.with_name(f".{SUMMARY_FILE}.tmp")
    temporary.write_text(json.dumps(clean(summary), indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
