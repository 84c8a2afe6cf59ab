"""Planning a grid: which strategy and analysis notebooks a profile implies, and which are done.

The runs of the reference strategies (`nbforget.strategies.reference_strategies`: MULTI and VANILLA)
go first, since the other strategy pages draw them as references. A run that is complete and
whose executed notebook is newer than its source is not executed again; an analysis is executed
again only when its source, or some run it reads, is newer than its page.
"""
from __future__ import annotations

from pathlib import Path

from nbforget.batch.notebooks import RUN_NOTEBOOK, Failure, Job, copy_file
from nbforget.config import REPO_ROOT, RunConfig, display_path
from nbforget.strategies import check_names, reference_strategies, run_store

BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def _newer(path: Path, *than: Path) -> bool:
    """True when `path` exists and is at least as new as every existing path in `than`."""
    if not path.exists():
        return False
    stamp = path.stat().st_mtime
    return all(stamp >= other.stat().st_mtime for other in than if other.exists())


def strategy_jobs(config: RunConfig, params_file: str, overrides: dict, *, book_dir: Path,
                  notebooks_dir: Path) -> tuple[list[Job], int, list[Failure]]:
    """The strategy notebooks to execute: ``(jobs, runs already done, strategies without a notebook)``.

    A run already done (complete, with an executed notebook newer than its source) has its book
    page refreshed from the run's copy here, when the page is missing or older.
    """
    check_names(config)  # a misspelt strategy gets "did you mean", not a request for a new notebook
    jobs, done, missing = [], 0, []
    for strategy in config.strategies:
        source = notebooks_dir / "strategies" / f"{strategy}.py"
        if not source.exists():
            missing.append(Failure(source, None, f"no notebook for strategy {strategy!r}; write "
                                                 f"{display_path(source)} (one per registered strategy)"))
            continue
        orders = config.orders_for(strategy)
        page = book_dir / "generated" / "strategies" / f"{strategy}.ipynb"
        for order in orders:
            for seed in config.seeds:
                store = run_store(config, strategy, order, seed)
                output = store.path / RUN_NOTEBOOK
                # the strategy's page in the book is its first run (first order, first seed)
                copies = (page,) if (order, seed) == (orders[0], config.seeds[0]) else ()
                if store.status == "complete" and _newer(output, source):
                    done += 1
                    for copy in copies:
                        if not _newer(copy, output):
                            copy_file(output, copy)
                    continue
                parameters = {"params_file": params_file, "order": order, "seed": seed,
                              "overrides": overrides, "progress": False}
                jobs.append(Job(f"{strategy} order {order} seed {seed}", source, output, parameters, copies,
                                cwd=source.parent, phase=0 if strategy in reference_strategies() else 1))
    jobs.sort(key=lambda job: job.phase)  # stable: the profile's order within a phase
    return jobs, done, missing


def analysis_jobs(config: RunConfig, params_file: str, overrides: dict, *, book_dir: Path,
                  notebooks_dir: Path, force: bool = False) -> tuple[list[Job], int]:
    """The analysis notebooks to execute, and how many are up to date.

    An analysis is up to date when its page is newer than its source and than every run result
    of the profile; `force` executes them all.
    """
    folder = notebooks_dir / "analyses"
    sources = sorted(path for path in folder.glob("*.py") if not path.name.startswith(("_", ".")))
    results = list((config.runs_path / config.profile).glob("*/order-*/seed-*/result.json"))
    runs_dir = overrides.get("runs_dir")
    jobs, current = [], 0
    for source in sources:
        output = book_dir / "generated" / "analyses" / f"{source.stem}.ipynb"
        if not force and _newer(output, source, *results):
            current += 1
            continue
        parameters = {"params_file": params_file, "runs_dir": runs_dir, "overrides": overrides}
        jobs.append(Job(f"analysis {source.stem}", source, output, parameters, cwd=folder))
    return jobs, current
