"""Ray backend of ``nbforget grid --engine ray``: every strategy run is a Ray task.

    execute_on_ray(jobs, config, *, address=None, shared_fs=None, max_retries=3, progress=True,
                   description="", already_done=0) -> list[Failure]
    connect(address=None, *, quiet=False) -> bool     ray.init as the grid does it; True when it did
    check_resources(resources) -> None               fail fast when no node of the cluster fits a run

`nbforget.batch.grid.run_grid` builds the jobs (one per strategy x order x seed still to run) and hands
them here when ``engine="ray"``; the analyses run locally afterwards, as with the local engine.

Cluster. ``address`` is passed to ``ray.init``: ``"auto"`` (the cluster this machine belongs to,
or the one ``RAY_ADDRESS`` names) or ``"HOST:6379"`` (the head node's GCS). Without one, the
address is ``"auto"`` when ``RAY_ADDRESS`` is set, else a local Ray instance is started for the
grid and stopped after it (``num_cpus`` = the machine's CPUs, no dashboard). A Ray session
already initialised in the calling process is used as it is.

Tasks. Each run is one task that executes the strategy notebook with papermill, exactly as the
local engine does (`nbforget.batch.notebooks.execute_job`), and reserves ``resources.num_cpus`` CPUs and
``resources.num_gpus`` GPUs of the run config (``params/defaults.yaml``; e.g.
``--set resources.num_gpus=1``). Ray sets ``OMP_NUM_THREADS`` (unless the worker's environment
does) to the task's CPUs and ``CUDA_VISIBLE_DEVICES`` to its GPUs, and the notebook kernel
inherits both. Asking for GPUs from a cluster that has none is an error before anything runs. The runs of the reference strategies (MULTI, VANILLA) of an order and
seed go before the other runs of that order and seed, whose pages draw them.

Faults. A task is retried up to ``max_retries`` times (default 3) when its worker process or
node dies (killed, out of memory, preempted); an error inside the notebook is not retried, it is
reported as a failed run with its notebook kept as ``notebook.failed.ipynb``, like locally. A
retry resumes the run from its last completed language step: the run store's ``progress.json``
is the commit point, so no completed step is trained again. The notebook kernel of a worker that
died exits on its own (ipykernel polls its parent), so a retry never shares a run directory with
a stray kernel. The driver shows runs done / running / queued / failed, notes each retry, and
ends with a summary; failed runs are listed with their error and notebook, and the command
exits non-zero.

Where results go. Runs land in the driver's run store (``runs_dir``), in one of two ways, chosen
per task:

- Shared filesystem (the normal cluster setup: NFS, Lustre, a Kubernetes ReadWriteMany volume,
  mounted at the same path, or resolved the same way, on every node): the task writes the run
  directory in place, as the local engine does, and a retry on any node resumes from it. The
  driver detects this by writing a probe file into ``runs_dir`` that each task looks for where
  its own notebook would write.
- No shared filesystem (``shared_fs=False``, ``nbforget grid --no-shared-fs``, or the probe is not
  visible from the worker): the task runs into a scratch folder of its node
  (``$TMPDIR/nbforget-ray/<key>/runs``), seeded with the driver's copy of the run if it has
  completed steps (so it resumes, and a complete run whose notebook is executed again is not
  trained again) and with the complete reference runs its page compares against, and returns the
  run directory's files (config.yaml, progress.json, scores.csv, drift.csv, result.json, status,
  notebook.ipynb, notebook_summary.json, and the checkpoint of an unfinished run) as bytes. The
  driver writes them atomically into its store, ``status`` last, so that the copy reads as
  complete only when all of it is there. Run files hold no machine paths (config.yaml records no
  ``runs_dir``); paths of the scratch folder printed in the notebook are rewritten to the driver's
  ``runs_dir``. A retry after a worker died resumes
  from the scratch folder when it lands on the same node, else from the driver's copy (steps done
  since on the dead node are trained again). Every node then needs its own checkout of the
  repository (same commit, ``pip install -e '.[ray]'``) with ``data/`` prepared.

Either way the notebook source and the params file travel with the task; a worker whose
checkout has another version of either runs the driver's.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from nbforget import NbforgetError
from nbforget.config import ResourceSettings, RunConfig
from nbforget.batch.notebooks import (
    RUN_NOTEBOOK,
    Failure,
    Job,
    copy_file,
    describe_error,
    ensure_kernelspec,
    execute_job,
    fix_metadata,
    temporary_environment,
)
from nbforget.pages import RUNS_DIR_ENV, notebook_config, resolve_params_file
from nbforget.runs import atomic_write, run_status
from nbforget.strategies import reference_strategies, run_store

__all__ = ["DEFAULT_MAX_RETRIES", "SCRATCH_DIR", "connect", "check_resources", "execute_on_ray"]

DEFAULT_MAX_RETRIES = 3
SCRATCH_DIR = "nbforget-ray"  # under the worker node's temporary folder, without a shared filesystem
PROBE_PREFIX = ".nbforget-ray-probe-"
# Settings of the driver's environment that the notebook kernels on the workers get too.
FORWARDED_ENVIRONMENT = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", RUNS_DIR_ENV)
POLL_SECONDS = 1.0


# ---------------------------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError:
        raise NbforgetError("the Ray engine needs Ray: pip install 'nbforget[ray]' "
                            "(or pip install 'ray[default]')") from None
    return ray


def connect(address: str | None = None, *, quiet: bool = False) -> bool:
    """Connect to (or start) Ray; True when this call initialised Ray in this process (connected or
    started an instance), so the caller calls ``ray.shutdown()`` after its work.

    `address` None: ``"auto"`` when ``RAY_ADDRESS`` is set, else a new local instance with every
    CPU of the machine and no dashboard.
    """
    import logging

    if address and address != "auto":
        _check_reachable(address)
    ray = _import_ray()
    if ray.is_initialized():
        return False
    level = logging.WARNING if quiet else logging.INFO
    if address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=level)
    else:
        try:
            ray.init(address=address or "auto", logging_level=level)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = address or f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
            raise NbforgetError(f"could not connect to the Ray cluster at {where}: {error}; start it with "
                                "`ray start --head` (see the README) or leave --address out to run on "
                                "this machine") from None
    return True


def _check_reachable(address: str, timeout: float = 20.0) -> None:
    """Fail fast on a ``HOST:PORT`` that does not answer (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT; Ray judges it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise NbforgetError(f"no Ray cluster answers at {address} ({error.strerror or error}); start its head "
                            f"node with `ray start --head --port={port}` (see the README), check the address, "
                            "or leave --address out to run on this machine") from None


def _nodes() -> list[dict]:
    ray = _import_ray()
    return [node for node in ray.nodes() if node.get("Alive")]


def check_resources(resources: ResourceSettings) -> None:
    """Fail before anything runs when the cluster cannot run a task with these resources."""
    ray = _import_ray()
    total = ray.cluster_resources()
    if resources.num_gpus > 0 and total.get("GPU", 0) <= 0:
        raise NbforgetError(
            f"resources.num_gpus is {resources.num_gpus:g} but the Ray cluster has no GPU "
            f"({total.get('CPU', 0):g} CPUs, 0 GPUs); set resources.num_gpus: 0 in the profile "
            "(or --set resources.num_gpus=0), or add GPU nodes to the cluster")
    largest_gpus = max((node["Resources"].get("GPU", 0) for node in _nodes()), default=0)
    if resources.num_gpus > largest_gpus:
        raise NbforgetError(f"resources.num_gpus is {resources.num_gpus:g} but no node of the Ray cluster "
                            f"has more than {largest_gpus:g} GPUs; lower resources.num_gpus")
    largest_cpus = max((node["Resources"].get("CPU", 0) for node in _nodes()), default=0)
    if resources.num_cpus > largest_cpus:
        # not an error: an autoscaling cluster adds bigger nodes on demand
        print(f"warning: resources.num_cpus is {resources.num_cpus:g} but the largest node of the Ray "
              f"cluster has {largest_cpus:g} CPUs; runs wait until a node that large joins")


class _Board:
    """A small actor the tasks tell when they start: the driver learns what runs, and retries."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def started(self, key: str, node: str, pid: int) -> None:
        self.events.append((key, node, pid))

    def drain(self) -> list[tuple[str, str, int]]:
        events, self.events = self.events, []
        return events


# ---------------------------------------------------------------------------------------------
# the task (runs on a worker)
# ---------------------------------------------------------------------------------------------


def _same_text(path: Path, text: str) -> bool:
    try:
        return Path(path).read_text(encoding="utf-8") == text
    except OSError:
        return False


def _steps(progress: bytes | None) -> int:
    import json

    if not progress:
        return 0
    try:
        return len(json.loads(progress).get("steps", []))
    except ValueError:
        return 0


def _read_run(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file of a run directory (checkpoint included), by path relative to it; hidden files left out."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts) \
                and relative.as_posix() not in skip:
            files[relative.as_posix()] = path.read_bytes()
    return files


def _write_run(folder: Path, files: dict[str, bytes]) -> None:
    """Write a run directory's files atomically, ``progress.json`` then ``status`` last, and drop stale ones."""
    last = ("progress.json", "status")
    for name in sorted(files, key=lambda name: (name in last, last.index(name) if name in last else 0, name)):
        atomic_write(folder / name, files[name])
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folders
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and relative.as_posix() not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _scratch(key: str) -> Path:
    return Path(tempfile.gettempdir()) / SCRATCH_DIR / key


def run_task(job: Job, spec: dict) -> dict:
    """Execute one run on this worker; see the module docstring. Returns a dict for the driver:
    ``failure`` (a `Failure` or None), ``files`` (the run's files when they travel back, else None),
    ``node`` and ``pid``.
    """
    import ray

    node = ray.util.get_node_ip_address()
    try:
        spec["board"].started.remote(spec["key"], node, os.getpid())
    except Exception:  # noqa: BLE001 - progress reports are best effort
        pass
    outcome = {"failure": None, "files": None, "node": node, "pid": os.getpid()}
    scratch = _scratch(spec["key"])
    environment = {"TOKENIZERS_PARALLELISM": "false", **job.environment}
    local = replace(job, copies=(), environment=environment)
    # The driver's notebook and params file, where this worker's checkout differs or lacks them.
    if not _same_text(job.source, spec["source_text"]):
        source = scratch / "notebooks" / job.source.parent.name / job.source.name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(spec["source_text"], encoding="utf-8")
        local = replace(local, source=source, cwd=source.parent)
    elif local.cwd is not None and not Path(local.cwd).is_dir():
        local = replace(local, cwd=job.source.parent)
    parameters = dict(job.parameters, overrides=dict(job.parameters.get("overrides") or {}))
    if not _same_text(resolve_params_file(parameters["params_file"]), spec["params_text"]):
        params = scratch / "params" / Path(parameters["params_file"]).name
        params.parent.mkdir(parents=True, exist_ok=True)
        params.write_text(spec["params_text"], encoding="utf-8")
        parameters["params_file"] = str(params)
    ensure_kernelspec()
    # Where this worker's notebook would write the run, and whether that is the driver's store.
    with temporary_environment(environment):
        runs = notebook_config(parameters["params_file"], parameters["overrides"]).runs_path
    try:
        shared = (runs / spec["probe"]).read_text() == spec["token"]
    except OSError:
        shared = False
    if spec["shared_fs"] is False:
        shared = False
    elif spec["shared_fs"] is True and not shared:
        outcome["failure"] = Failure(job.source, None, (
            f"the worker on {node} does not see the runs directory {spec['runs_path']} (it resolves "
            f"runs_dir to {runs}); mount it there on every node, or run without the shared-filesystem "
            "requirement (--no-shared-fs)"))
        return outcome
    if shared:
        run_dir = runs / spec["run"]
        local = replace(local, output=run_dir / RUN_NOTEBOOK, parameters=parameters)
        failure = execute_job(local)
        if local.source != job.source:
            for notebook in (local.output, local.output.with_name(f"{local.output.stem}.failed.ipynb")):
                if notebook.exists():
                    fix_metadata(notebook, job)
        outcome["failure"] = failure and replace(failure, notebook=job.source, output=failure.output and (
            Path(spec["runs_path"]) / spec["run"] / failure.output.name))
        return outcome
    # No shared filesystem: run into this node's scratch folder, send the files back.
    root = scratch / "runs"
    run_dir = root / spec["run"]
    existing = ray.get(spec["existing"]) if spec["existing"] is not None else {}
    progress_file = run_dir / "progress.json"
    here = progress_file.read_bytes() if progress_file.exists() else None
    if _steps(existing.get("progress.json")) > _steps(here):  # else a retry here got further already
        shutil.rmtree(run_dir, ignore_errors=True)
        _write_run(run_dir, existing)
    references = ray.get(spec["references"]) if spec["references"] is not None else {}
    for relative, files in references.items():
        if (root / relative / "status").exists():
            continue
        _write_run(root / relative, files)
    if "runs_dir" in parameters["overrides"]:
        parameters["overrides"]["runs_dir"] = str(root)
    else:
        environment = {**environment, RUNS_DIR_ENV: str(root)}
    local = replace(local, output=run_dir / RUN_NOTEBOOK, parameters=parameters, environment=environment)
    failure = execute_job(local)
    files = _read_run(run_dir)
    for name, data in files.items():
        if name.endswith((".ipynb", ".json")) and name != "progress.json":
            files[name] = data.replace(str(root).encode(), spec["runs_dir"].encode())
    outcome["files"] = files
    outcome["failure"] = failure and replace(failure, notebook=job.source, output=failure.output and (
        Path(spec["runs_path"]) / spec["run"] / failure.output.name))
    shutil.rmtree(scratch, ignore_errors=True)
    return outcome


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


def _run_key(job: Job, config: RunConfig) -> tuple[str, str]:
    """(the run's folder relative to the runs root, a key naming it on the cluster)."""
    relative = Path(job.output).parent.relative_to(config.runs_path).as_posix()
    digest = hashlib.sha256(f"{config.runs_path}|{relative}|{config.digest()}".encode()).hexdigest()[:16]
    return relative, digest


def _existing(folder: Path) -> dict[str, bytes] | None:
    """The driver's copy of a run with completed steps, notebooks left out: an unfinished run resumes
    from it elsewhere, and a complete one whose notebook is executed again is not trained again."""
    if not (folder / "progress.json").exists():
        return None
    return _read_run(folder, skip=(RUN_NOTEBOOK, f"{Path(RUN_NOTEBOOK).stem}.failed.ipynb"))


def _references(job: Job, config: RunConfig) -> dict[str, dict[str, bytes]]:
    """Complete runs of the reference strategies of the job's order, seed and sweep point (their
    small files)."""
    run_dir = Path(job.output).parent
    config = notebook_config(job.parameters["params_file"], job.parameters.get("overrides"))  # with its point
    found = {}
    for strategy in reference_strategies():
        folder = run_store(config, strategy, job.parameters["order"], job.parameters["seed"]).path
        if folder == run_dir or run_status(folder) != "complete":
            continue
        files = _read_run(folder, skip=(RUN_NOTEBOOK,))
        found[folder.relative_to(config.runs_path).as_posix()] = {
            name: data for name, data in files.items() if not name.startswith("checkpoint/")}
    return found


def execute_on_ray(jobs: list[Job], config: RunConfig, *, address: str | None = None,
                   shared_fs: bool | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                   progress: bool = True, description: str = "", already_done: int = 0) -> list[Failure]:
    """Execute the strategy `jobs` as Ray tasks; the failures, as `nbforget.batch.grid` returns them.

    `shared_fs` None detects per task whether the worker sees ``config.runs_path``; False always
    sends the run files back to the driver; True requires the shared filesystem. See the module
    docstring for retries and where results go.
    """
    if max_retries < 0:
        raise NbforgetError(f"max_retries must be at least 0, got {max_retries}")
    if not jobs:
        return []
    ray = _import_ray()
    started_ray = connect(address, quiet=not progress)
    probe = PROBE_PREFIX + uuid.uuid4().hex
    token = uuid.uuid4().hex
    probe_path = config.runs_path / probe
    try:
        check_resources(config.resources)
        config.runs_path.mkdir(parents=True, exist_ok=True)
        probe_path.write_text(token)
        return _drive(ray, jobs, config, probe=probe, token=token, shared_fs=shared_fs,
                      max_retries=max_retries, progress=progress, description=description,
                      already_done=already_done)
    finally:
        probe_path.unlink(missing_ok=True)
        if started_ray:
            ray.shutdown()


def _drive(ray, jobs: list[Job], config: RunConfig, *, probe: str, token: str, shared_fs: bool | None,
           max_retries: int, progress: bool, description: str, already_done: int) -> list[Failure]:
    from tqdm.auto import tqdm

    began = time.perf_counter()
    board = ray.remote(num_cpus=0)(_Board).remote()
    task = ray.remote(run_task).options(
        num_cpus=config.resources.num_cpus, num_gpus=config.resources.num_gpus,
        max_retries=max_retries, retry_exceptions=False)
    forwarded = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if os.environ.get(name)}
    texts: dict[Path, str] = {}
    params_file = jobs[0].parameters["params_file"]
    params_text = resolve_params_file(params_file).read_text(encoding="utf-8")

    failures: list[Failure] = []
    total = len(jobs) + already_done
    bar = tqdm(total=total, initial=already_done, desc=description, unit="run", disable=not progress,
               dynamic_ncols=True)
    counts = {"done": already_done, "running": 0, "queued": len(jobs), "failed": 0}
    keys = {id(job): _run_key(job, config) for job in jobs}
    labels = {keys[id(job)][1]: job.label for job in jobs}
    attempts: dict[str, int] = {}
    running: set[str] = set()
    finished_keys: set[str] = set()
    nodes: set[str] = set()
    retried: set[str] = set()

    shown: list[dict] = [{}]

    def show() -> None:
        """Refresh the postfix when a count changed (a log file gets a line per change, not per poll)."""
        counts["running"] = len(running)
        counts["queued"] = len(queue) + len(pending) - len(running)
        if counts != shown[0]:
            shown[0] = dict(counts)
            bar.set_postfix(counts, refresh=True)

    def note_events() -> None:
        try:
            events = ray.get(board.drain.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - the board is for display only
            return
        for key, node, _pid in events:
            attempts[key] = attempts.get(key, 0) + 1
            nodes.add(node)
            if key in finished_keys:
                continue
            running.add(key)
            if attempts[key] > 1:
                retried.add(key)
                bar.write(f"retry {attempts[key] - 1} of {labels[key]} on {node}: its worker died; "
                          "resuming from the last completed language step")

    def finish(job: Job, failure: Failure | None) -> None:
        key = keys[id(job)][1]
        running.discard(key)
        finished_keys.add(key)
        if failure is None:
            counts["done"] += 1
            for copy in job.copies:
                copy_file(job.output, copy)
        else:
            counts["failed"] += 1
            failures.append(failure)
            where = f" (notebook: {failure.output})" if failure.output else ""
            bar.write(f"failed: {job.label}: {failure.error}{where}")
        bar.update(1)

    def blocked(job: Job) -> bool:
        """A run waits for the runs of an earlier phase of its own order and seed."""
        folder = Path(job.output).parent
        return any(other.phase < job.phase and Path(other.output).parent.parent.name == folder.parent.name
                   and Path(other.output).parent.name == folder.name for other in [*queue, *pending.values()])

    def submit(job: Job):
        relative, key = keys[id(job)]
        if job.source not in texts:
            texts[job.source] = Path(job.source).read_text(encoding="utf-8")
        existing = references = None
        if shared_fs is not True:  # the files travel only if a worker needs them (nested refs are lazy)
            found = _existing(Path(job.output).parent)
            existing = ray.put(found) if found else None
            refs = _references(job, config) if job.phase > 0 else {}
            references = ray.put(refs) if refs else None
        spec = {"key": key, "run": relative, "probe": probe, "token": token, "shared_fs": shared_fs,
                "runs_path": str(config.runs_path), "runs_dir": config.runs_dir,
                "source_text": texts[job.source], "params_text": params_text,
                "existing": existing, "references": references, "board": board}
        environment = {**forwarded, **job.environment}
        return task.remote(replace(job, environment=environment), spec)

    queue = list(jobs)
    pending: dict = {}
    show()
    try:
        while queue or pending:
            for job in [job for job in queue if not blocked(job)]:
                queue.remove(job)
                pending[submit(job)] = job
            show()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            note_events()
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayTaskError as error:  # the task itself raised: not retried
                    cause = error.cause if getattr(error, "cause", None) is not None else error
                    finish(job, Failure(job.source, None, describe_error(cause)))
                    continue
                except ray.exceptions.RayError as error:  # the worker or node died on every attempt
                    finish(job, Failure(job.source, None, (
                        f"{type(error).__name__}: the Ray worker was lost on all {max_retries + 1} attempt(s); "
                        f"completed steps are kept in the run store and the next grid resumes from them")))
                    continue
                nodes.add(outcome["node"])
                failure = outcome["failure"]
                if outcome["files"] is not None:
                    folder = Path(job.output).parent
                    _write_run(folder, outcome["files"])
                    for notebook in (folder / RUN_NOTEBOOK, folder / f"{Path(RUN_NOTEBOOK).stem}.failed.ipynb"):
                        if notebook.exists():
                            fix_metadata(notebook, job)
                finish(job, failure)
            show()
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    if progress:
        retries = sum(attempts.get(key, 1) - 1 for key in retried)
        print(f"{description or 'runs'} on Ray: {len(jobs)} run(s) on {len(nodes)} node(s) in "
              f"{time.perf_counter() - began:.0f} s: {counts['done'] - already_done} done, {counts['failed']} failed"
              + (f", {retries} retry(ies) after a worker died ({', '.join(labels[k] for k in sorted(retried))})"
                 if retries else ""))
    return failures
