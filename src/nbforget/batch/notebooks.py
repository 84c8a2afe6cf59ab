"""Executing one notebook: a jupytext source run by papermill on this Python's kernel.

    Job, Failure                  one notebook execution, and why one did not execute
    ensure_kernelspec(name)       a ``python3`` kernel that runs this Python
    load_source(path)             a jupytext py:percent notebook, ready for papermill
    without_absent_sections(notebook, parameters)   the cells of sections its config has nothing for
                                  (`OPTIONAL_SECTIONS`, by cell tag) left out
    execute_job(job)              run it; the output appears only when it succeeded
"""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nbforget import NbforgetError
from nbforget.config import display_path, swept_axis

KERNEL_NAME = "python3"
RUN_NOTEBOOK = "notebook.ipynb"  # the executed strategy notebook inside each run directory
KERNELSPEC = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)", "language": "python"}
START_TIMEOUT = 300  # seconds for a kernel to start; generous, a loaded laptop is slow
# The kernel's own start-up log (e.g. that it talks TCP on localhost) would print once per
# notebook, and its note that it was interrupted at shutdown; what cells print is in the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


OPTIONAL_SECTIONS = {
    # cell tag -> whether a page's config has something for the cells so tagged
    "held-out": lambda config: bool(config.held_out_languages),
    # the base-model comparison's table and figure (analyses/models.py): a sweep axis varies model.name
    "model-sweep": lambda config: swept_axis(config, "model.name") is not None,
}
"""Sections of a page that the executed page (the book's) holds only when its config calls for
them: a cell tagged with a key here is left out of the notebook before it runs when the function
says False. Run by hand (JupyterLab, nbval) the cells stay and say there is nothing to show."""


def without_absent_sections(notebook, parameters: dict):
    """`notebook` without the cells of `OPTIONAL_SECTIONS` its config (from the injected
    ``params_file`` and ``overrides``) has nothing for. A config that does not load keeps every
    cell: the notebook's own first cell then reports the error."""
    from nbforget.pages import notebook_config

    tagged = {tag for cell in notebook.cells for tag in cell.metadata.get("tags", []) if tag in OPTIONAL_SECTIONS}
    if not tagged or "params_file" not in parameters:
        return notebook
    try:
        config = notebook_config(parameters["params_file"], parameters.get("overrides") or None)
    except NbforgetError:
        return notebook
    absent = {tag for tag in tagged if not OPTIONAL_SECTIONS[tag](config)}
    notebook.cells = [cell for cell in notebook.cells if not absent & set(cell.metadata.get("tags", []))]
    return notebook


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
        failure = run_papermill(job, running, failed)
    if failure is not None:
        return failure
    fix_metadata(running, job)
    os.replace(running, output)
    failed.unlink(missing_ok=True)
    for copy in job.copies:
        copy_file(output, copy)
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


def run_papermill(job: Job, running: Path, failed: Path) -> Failure | None:
    """Execute `job`'s notebook into `running`; on failure keep it as `failed` and describe why."""
    import papermill

    try:
        notebook = without_absent_sections(load_source(job.source), job.parameters)
        papermill.execute_notebook(
            notebook, str(running), parameters=job.parameters, kernel_name=KERNEL_NAME,
            progress_bar=False, cwd=str(job.cwd or job.source.parent), start_timeout=START_TIMEOUT,
            extra_arguments=KERNEL_ARGUMENTS,
        )
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the grid
        kept = None
        if running.exists():
            os.replace(running, failed)
            fix_metadata(failed, job)
            kept = failed
        return Failure(job.source, kept, describe_error(error))
    return None


def fix_metadata(path: Path, job: Job) -> None:
    """Record the source path (papermill stores the in-memory input itself) and the output."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    papermill_metadata = notebook.metadata.setdefault("papermill", {})
    papermill_metadata["input_path"] = display_path(job.source)
    papermill_metadata["output_path"] = display_path(job.output)
    notebook.metadata.pop("jupytext", None)
    nbformat.write(notebook, path)


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.copy")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)


def describe_error(error: BaseException) -> str:
    name = getattr(error, "ename", None)
    value = getattr(error, "evalue", None)
    text = f"{name}: {value}" if name else f"{type(error).__name__}: {error}"
    return ANSI.sub("", text).strip()


def run_in_worker(job: Job, threads: int | None) -> Failure | None:
    """Entry point of a worker process: limit the kernel's CPU threads, then execute."""
    if threads:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return execute_job(job)
