"""Batch execution of the notebooks: every strategy x order x seed of a profile, then the analyses.

    run_grid(params_file, *, overrides=None, analyses=True, workers=1, progress=True,
             book_dir=BOOK_DIR, notebooks_dir=NOTEBOOKS_DIR, engine="local", address=None,
             shared_fs=None, max_retries=3) -> list[Failure]
    make_book(params_file, overrides=None, workers=1, *, book_dir=..., notebooks_dir=...,
              engine=..., address=..., shared_fs=..., max_retries=...) -> Path
    ensure_kernelspec(name="python3") -> str
    load_source(path) -> NotebookNode          a jupytext py:percent notebook, ready for papermill

For each run, ``notebooks/strategies/<strategy>.py`` is converted in memory and executed with
papermill, with the parameters ``params_file``, ``order``, ``seed``, ``overrides`` and
``progress=False`` injected, into ``<run_dir>/notebook.ipynb``. The run of the profile's first
order and seed is also the strategy's page in the book: ``<book_dir>/generated/strategies/
<strategy>.ipynb``. Then every ``notebooks/analyses/*.py`` is executed into
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
the same run store (`nbforget.ray_backend`); the analyses run here afterwards.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nbforget import NbforgetError
from nbforget.config import REPO_ROOT, RunConfig, display_path
from nbforget.notebook_support import notebook_config, resolve_params_file

__all__ = [
    "BOOK_DIR",
    "NOTEBOOKS_DIR",
    "KERNEL_NAME",
    "ENGINES",
    "RUN_NOTEBOOK",
    "REFERENCE_STRATEGIES",
    "Failure",
    "Job",
    "ensure_kernelspec",
    "load_source",
    "strategy_jobs",
    "analysis_jobs",
    "execute_job",
    "run_grid",
    "make_book",
]

BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
RUN_NOTEBOOK = "notebook.ipynb"  # the executed strategy notebook inside each run directory
# Strategy pages draw these runs as references (same order and seed), so they run first.
REFERENCE_STRATEGIES = ("multi", "vanilla")
KERNELSPEC = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)", "language": "python"}
ENGINES = ("local", "ray")  # where strategy notebooks run: here, or as Ray tasks (nbforget.ray_backend)
START_TIMEOUT = 300  # seconds for a kernel to start; generous, a loaded laptop is slow
# The kernel's own start-up log (e.g. that it talks TCP on localhost) would print once per
# notebook, and its note that it was interrupted at shutdown; what cells print is in the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Failure:
    """A notebook that did not execute: its source, where its output was kept, and why."""

    notebook: Path
    output: Path | None
    error: str

    def __str__(self) -> str:
        where = f" (executed notebook kept in {self.output})" if self.output else ""
        return f"{self.notebook}: {self.error}{where}"


@dataclass(frozen=True)
class Job:
    """One notebook execution: source, output, parameters, and where copies of the output go."""

    label: str
    source: Path
    output: Path
    parameters: dict
    copies: tuple[Path, ...] = ()
    cwd: Path | None = None
    environment: dict = field(default_factory=dict)
    phase: int = 0  # a job starts only when no job of an earlier phase is still running


# ---------------------------------------------------------------------------------------------
# kernel and notebook sources
# ---------------------------------------------------------------------------------------------


def ensure_kernelspec(name: str = KERNEL_NAME) -> str:
    """Make sure a Jupyter kernel `name` exists for this Python; install it here if not.

    The kernel is installed into this environment (``sys.prefix/share/jupyter/kernels``) by
    ipykernel. A kernel of that name that runs another Python is an error, since notebooks
    would then not see this environment's packages.
    """
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    own = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    if not own.exists():
        from ipykernel.kernelspec import install

        install(kernel_name=name, prefix=sys.prefix)
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise NbforgetError(f"no Jupyter kernel {name!r} after installing it into {own.parent}") from None
    program = spec.argv[0] if spec.argv else ""
    # jupyter_client runs "python", "python3", "python3.X" as the current interpreter.
    generic = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if program not in generic and Path(program).resolve() != Path(sys.executable).resolve():
        raise NbforgetError(
            f"the Jupyter kernel {name!r} ({spec.resource_dir}) runs {program}, not this Python "
            f"({sys.executable}); remove that kernelspec or reinstall it with "
            f"`{sys.executable} -m ipykernel install --sys-prefix --name {name}`"
        )
    return name


def load_source(path: Path):
    """A jupytext py:percent notebook as an nbformat notebook, set to run on the python3 kernel."""
    import jupytext

    notebook = jupytext.read(Path(path), fmt="py:percent")
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    return notebook


# ---------------------------------------------------------------------------------------------
# execution of one notebook
# ---------------------------------------------------------------------------------------------


def execute_job(job: Job) -> Failure | None:
    """Execute one notebook with papermill; write it to ``job.output`` only when it succeeded.

    The notebook is written to a temporary file next to the output while it runs, then moved
    into place; on failure it is kept as ``<output stem>.failed.ipynb`` and a `Failure` is
    returned. Copies are made after success.
    """
    output = Path(job.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    running = output.with_name(f".{output.stem}.running.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    with temporary_environment(job.environment):
        failure = _run_papermill(job, running, failed)
    if failure is not None:
        return failure
    _fix_metadata(running, job)
    os.replace(running, output)
    failed.unlink(missing_ok=True)
    for copy in job.copies:
        _copy(output, copy)
    return None


@contextmanager
def temporary_environment(values: dict):
    """Set environment variables for the block; restore (or remove) them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: str(value) for key, value in values.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_papermill(job: Job, running: Path, failed: Path) -> Failure | None:
    """Execute `job`'s notebook into `running`; on failure keep it as `failed` and describe why."""
    import papermill

    try:
        notebook = load_source(job.source)
        papermill.execute_notebook(
            notebook, str(running), parameters=job.parameters, kernel_name=KERNEL_NAME,
            progress_bar=False, cwd=str(job.cwd or job.source.parent), start_timeout=START_TIMEOUT,
            extra_arguments=KERNEL_ARGUMENTS,
        )
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the grid
        kept = None
        if running.exists():
            os.replace(running, failed)
            _fix_metadata(failed, job)
            kept = failed
        return Failure(job.source, kept, _describe(error))
    return None


def _fix_metadata(path: Path, job: Job) -> None:
    """Record the source path (papermill stores the in-memory input itself) and the output."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    papermill_metadata = notebook.metadata.setdefault("papermill", {})
    papermill_metadata["input_path"] = display_path(job.source)
    papermill_metadata["output_path"] = display_path(job.output)
    notebook.metadata.pop("jupytext", None)
    nbformat.write(notebook, path)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.copy")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)


def _describe(error: BaseException) -> str:
    name = getattr(error, "ename", None)
    value = getattr(error, "evalue", None)
    text = f"{name}: {value}" if name else f"{type(error).__name__}: {error}"
    return _ANSI.sub("", text).strip()


def _run_in_worker(job: Job, threads: int | None) -> Failure | None:
    """Entry point of a worker process: limit the kernel's CPU threads, then execute."""
    if threads:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return execute_job(job)


# ---------------------------------------------------------------------------------------------
# the jobs of a grid
# ---------------------------------------------------------------------------------------------


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
    from nbforget.runs import RunStore

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
                store = RunStore(config.runs_path, config.profile, strategy, order, seed)
                output = store.path / RUN_NOTEBOOK
                # the strategy's page in the book is its first run (first order, first seed)
                copies = (page,) if (order, seed) == (orders[0], config.seeds[0]) else ()
                if store.status == "complete" and _newer(output, source):
                    done += 1
                    for copy in copies:
                        if not _newer(copy, output):
                            _copy(output, copy)
                    continue
                parameters = {"params_file": params_file, "order": order, "seed": seed,
                              "overrides": overrides, "progress": False}
                jobs.append(Job(f"{strategy} order {order} seed {seed}", source, output, parameters, copies,
                                cwd=source.parent, phase=0 if strategy in REFERENCE_STRATEGIES else 1))
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


# ---------------------------------------------------------------------------------------------
# running jobs
# ---------------------------------------------------------------------------------------------


def _execute_all(jobs: list[Job], *, workers: int, progress: bool, description: str,
                 already_done: int = 0) -> list[Failure]:
    """Execute `jobs` with `workers` processes; a tqdm bar shows done / running / failed.

    Jobs run in the order given; a job waits until every job of an earlier phase has finished.
    """
    from tqdm.auto import tqdm

    failures: list[Failure] = []
    total = len(jobs) + already_done
    bar = tqdm(total=total, initial=already_done, desc=description, unit="notebook", disable=not progress,
               dynamic_ncols=True)
    counts = {"done": already_done, "running": 0, "failed": 0}

    def show(current: str = "") -> None:
        bar.set_postfix(counts | ({"now": current} if current else {}), refresh=True)

    def finished(job: Job, failure: Failure | None) -> None:
        counts["running"] -= 1
        if failure is None:
            counts["done"] += 1
        else:
            counts["failed"] += 1
            failures.append(failure)
            bar.write(f"failed: {job.label}: {failure.error}")
        bar.update(1)
        show()

    show()
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            counts["running"] += 1
            show(job.label)
            finished(job, execute_job(job))
    else:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future, Job] = {}
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < workers and all(
                        running.phase >= queue[0].phase for running in pending.values()):
                    job = queue.pop(0)
                    try:
                        pending[pool.submit(_run_in_worker, job, threads)] = job
                    except BrokenProcessPool as error:  # a worker died: report the rest, do not crash
                        for lost in [job, *queue]:
                            counts["running"] += 1
                            finished(lost, Failure(lost.source, None, f"not executed: {_describe(error)} "
                                                                      "(rerun with --workers 1 to see why)"))
                        queue.clear()
                        break
                    counts["running"] += 1
                show()
                if not pending:
                    break
                completed, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in completed:
                    job = pending.pop(future)
                    try:
                        failure = future.result()
                    except Exception as error:  # noqa: BLE001 - a crashed worker is one failure
                        failure = Failure(job.source, None, _describe(error))
                    finished(job, failure)
    bar.close()
    return failures


def _prepare_base_model(config: RunConfig, progress: bool) -> None:
    """Build (or find) the base model once, before kernels in parallel would each build it."""
    from nbforget.models import base_model_dir

    base_model_dir(config.model, list(config.languages), config.data_path, progress=progress)


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
    results reach this machine's runs directory (`nbforget.ray_backend`); the analyses still run
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
    config = notebook_config(params_path, overrides)
    parameter_path = display_path(params_path)
    ensure_kernelspec()
    started = time.perf_counter()
    jobs, done, failures = strategy_jobs(config, parameter_path, overrides, book_dir=book_dir,
                                         notebooks_dir=notebooks_dir)
    if jobs and (workers > 1 or engine == "ray"):
        _prepare_base_model(config, progress)
    if engine == "ray":
        from nbforget.ray_backend import execute_on_ray

        failures += execute_on_ray(jobs, config, address=address, shared_fs=shared_fs, max_retries=max_retries,
                                   progress=progress, description=f"{config.profile}: strategy runs",
                                   already_done=done)
    else:
        failures += _execute_all(jobs, workers=workers, progress=progress,
                                 description=f"{config.profile}: strategy runs", already_done=done)
    if analyses:
        analysis, current = analysis_jobs(config, parameter_path, overrides, book_dir=book_dir,
                                          notebooks_dir=notebooks_dir, force=bool(jobs))
        failures += _execute_all(analysis, workers=workers, progress=progress,
                                 description=f"{config.profile}: analyses", already_done=current)
    if progress:
        state = "all notebooks executed" if not failures else f"{len(failures)} notebook(s) failed"
        print(f"{config.profile}: {state} in {time.perf_counter() - started:.0f} s; pages in "
              f"{book_dir / 'generated'}")
        for failure in failures:
            print(f"  {failure}")
    return failures


def make_book(params_file: str | Path, overrides: dict | None = None, workers: int = 1, *,
              book_dir: str | Path | None = None, notebooks_dir: str | Path | None = None,
              progress: bool = True, engine: str = "local", address: str | None = None,
              shared_fs: bool | None = None, max_retries: int = 3) -> Path:
    """Execute what is missing (`run_grid`, with its `engine` options), then build the book; returns
    the HTML folder.

    Raises `NbforgetError` listing the failed notebooks instead of building an incomplete book.
    """
    book_dir = Path(book_dir) if book_dir is not None else BOOK_DIR
    failures = run_grid(params_file, overrides=overrides, analyses=True, workers=workers, progress=progress,
                        book_dir=book_dir, notebooks_dir=notebooks_dir, engine=engine, address=address,
                        shared_fs=shared_fs, max_retries=max_retries)
    if failures:
        listing = "\n".join(f"  {failure}" for failure in failures)
        raise NbforgetError(f"{len(failures)} notebook(s) failed, so the book was not built; fix them "
                            f"and run the same command again (finished runs are kept):\n{listing}")
    from nbforget.book import build_book

    return build_book(book_dir)
