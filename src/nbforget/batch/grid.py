"""Batch execution of the notebooks: every run of a profile, then the analyses.

    run_grid(params_file, *, overrides=None, analyses=True, workers=1, progress=True,
             book_dir=BOOK_DIR, notebooks_dir=NOTEBOOKS_DIR, engine="local", address=None,
             shared_fs=None, max_retries=3) -> list[Failure]

For each run (strategy x sweep point x order x seed, `nbforget.strategies.planned_runs`),
``notebooks/strategies/<strategy>.py`` is converted in memory and executed with papermill, with
the parameters ``params_file``, ``order``, ``seed``, ``overrides`` (the grid's, with the run's
sweep point on top) and ``progress=False`` injected, into ``<run_dir>/notebook.ipynb``. A
strategy's first run (first sweep point, order and seed) is also its page in the book:
``<book_dir>/generated/strategies/<strategy>.ipynb``. Then every ``notebooks/analyses/*.py`` is executed into
``<book_dir>/generated/analyses/<name>.ipynb``; analyses only read runs.

The runs of MULTI and VANILLA go first, since the other strategy pages draw them as references.
Work already done is skipped: a run that is complete and whose executed notebook is newer than
the notebook source is not executed again (its book page is refreshed from the run's copy when
needed); an incomplete run is resumed by the engine from its last completed language. An
analysis is executed again only when its source, or some run it reads, is newer than its page.

A notebook that fails does not stop the others: the failures are collected and returned (the
command line exits with a non-zero status), and the failed notebook is kept next to where the
executed one would be, as ``<name>.failed.ipynb``, with the error in its cells.

``workers`` notebooks run at once, each in its own process and kernel; the CPU threads of the
machine are shared between them. The base model is built once before parallel work starts, so
that two kernels do not build it at the same time.

With ``engine="ray"`` the strategy notebooks run as Ray tasks instead, one per run, with the
resources of the config's ``resources`` section, retried when a worker dies, their results in
the same run store (`nbforget.batch.ray`); the analyses run here afterwards.
"""
from __future__ import annotations

import time
from pathlib import Path

from nbforget import NbforgetError
from nbforget.batch.local import execute_all
from nbforget.batch.notebooks import Failure, ensure_kernelspec
from nbforget.batch.plan import BOOK_DIR, NOTEBOOKS_DIR, analysis_jobs, base_model_configs, strategy_jobs
from nbforget.config import RunConfig, display_path
from nbforget.models import base_model_dir
from nbforget.pages import notebook_config, resolve_params_file
from nbforget.strategies import check_names

ENGINES = ("local", "ray")  # where strategy notebooks run: here, or as Ray tasks (nbforget.batch.ray)


def _prepare_base_model(config: RunConfig, progress: bool) -> None:
    """Build (or find) the base model once, before kernels in parallel would each build it: the
    same one `nbforget.tasks.prepare` asks for (every evaluated language, the config's data set)."""
    base_model_dir(config.model, config.evaluated_languages, config.data_path, dataset=config.dataset,
                   progress=progress)


def run_grid(params_file: str | Path, *, overrides: dict | None = None, analyses: bool = True,
             workers: int = 1, progress: bool = True, book_dir: str | Path | None = None,
             notebooks_dir: str | Path | None = None, engine: str = "local", address: str | None = None,
             shared_fs: bool | None = None, max_retries: int = 3) -> list[Failure]:
    """Execute every strategy notebook of the profile (strategies x orders x seeds), then the analyses.

    Returns the failures (empty when everything ran). `book_dir` (default ``book/``) receives the
    executed pages under ``generated/``; `notebooks_dir` (default ``notebooks/``) holds the
    ``strategies/`` and ``analyses/`` sources. See the module docstring for what is skipped.

    `engine` ``"ray"`` runs the strategy notebooks as Ray tasks on the cluster at `address`, with
    `max_retries` retries of a run whose worker died and `shared_fs` (None: detected) saying how
    results reach this machine's runs directory (`nbforget.batch.ray`); the analyses still run
    here, with `workers` processes.
    """
    if workers < 1:
        raise NbforgetError(f"workers must be at least 1, got {workers}")
    if engine not in ENGINES:
        raise NbforgetError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    overrides = dict(overrides or {})
    book_dir = Path(book_dir) if book_dir is not None else BOOK_DIR
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    params_path = resolve_params_file(params_file)
    config = check_names(notebook_config(params_path, overrides))  # a misspelt strategy: before any kernel
    parameter_path = display_path(params_path)
    ensure_kernelspec()
    started = time.perf_counter()
    jobs, done, failures = strategy_jobs(config, parameter_path, overrides, book_dir=book_dir,
                                         notebooks_dir=notebooks_dir)
    if jobs and (workers > 1 or engine == "ray"):
        for model_config in base_model_configs(config):  # a sweep or by_strategy may change the model
            _prepare_base_model(model_config, progress)
    if engine == "ray":
        from nbforget.batch.ray import execute_on_ray

        failures += execute_on_ray(jobs, config, address=address, shared_fs=shared_fs, max_retries=max_retries,
                                   progress=progress, description=f"{config.profile}: strategy runs",
                                   already_done=done)
    else:
        failures += execute_all(jobs, workers=workers, progress=progress,
                                 description=f"{config.profile}: strategy runs", already_done=done)
    if analyses:
        analysis, current = analysis_jobs(config, parameter_path, overrides, book_dir=book_dir,
                                          notebooks_dir=notebooks_dir, force=bool(jobs))
        failures += execute_all(analysis, workers=workers, progress=progress,
                                 description=f"{config.profile}: analyses", already_done=current)
    if progress:
        state = "all notebooks executed" if not failures else f"{len(failures)} notebook(s) failed"
        print(f"{config.profile}: {state} in {time.perf_counter() - started:.0f} s; pages in "
              f"{book_dir / 'generated'}")
        for failure in failures:
            print(f"  {failure}")
    return failures
