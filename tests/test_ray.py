"""The Ray engine of the grid (`nbforget grid --engine ray`), against a real Ray cluster.

The slow tests start a one-node cluster on this machine (``ray start --head`` on free ports, its
own temporary folder, two CPUs, no dashboard, usage stats off) and stop it at the end of the
module, even when a test fails: every process of the cluster's session, and their children, is
ended by its process id. The quick profile's runs are executed locally once (`local_runs`) and
every Ray run is compared with them: the scores of a run must be the same whichever engine ran
it, whether the worker wrote the run store in place or sent its files back, and whether or not
the worker was killed halfway.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nbforget import NbforgetError
from nbforget.config import RunConfig, load_config

QUICK = "params/profiles/quick.yaml"
LOCAL_STRATEGIES = ["vanilla", "shared_lora", "nonshared_lora"]
RUN_FILES = ("config.yaml", "progress.json", "scores.csv", "drift.csv", "result.json", "status", "notebook.ipynb")
CLUSTER_START_SECONDS = 300  # a loaded machine starts Ray slowly
RUN_SECONDS = 600


# --------------------------------------------------------------------------- config and command line (fast)


def test_resources_default_to_one_cpu_and_no_gpu_and_are_overridable():
    config = load_config(QUICK)
    assert (config.resources.num_cpus, config.resources.num_gpus) == (1.0, 0.0)
    assert config.resources == RunConfig().resources  # params/defaults.yaml agrees with the dataclass
    config = load_config(QUICK, {"resources": {"num_gpus": 1}})
    assert (config.resources.num_cpus, config.resources.num_gpus) == (1.0, 1.0)
    with pytest.raises(NbforgetError, match="resources.num_cpus"):
        load_config(QUICK, {"resources": {"num_cpus": -1}})
    with pytest.raises(NbforgetError, match="unknown key 'gpus'"):
        load_config(QUICK, {"resources": {"gpus": 1}})


def test_resources_are_not_part_of_the_recorded_config():
    """A run started with other resources resumes: config.yaml and the digest leave them out."""
    one, two = load_config(QUICK), load_config(QUICK, {"resources": {"num_cpus": 4}})
    assert "resources" not in one.to_dict()
    assert one.to_dict() == two.to_dict() and one.digest() == two.digest()


def test_cli_passes_the_engine_options_to_the_grid_and_the_book(monkeypatch, tmp_path):
    import nbforget.batch.grid
    from nbforget.cli import main

    calls = []
    monkeypatch.setattr(nbforget.batch.grid, "run_grid", lambda *args, **kwargs: calls.append(kwargs) or [])
    assert main(["grid", "--params", QUICK, "--quiet", "--engine", "ray", "--address", "10.0.0.1:6379",
                 "--no-shared-fs", "--max-retries", "5"]) == 0
    assert calls[-1]["engine"] == "ray" and calls[-1]["address"] == "10.0.0.1:6379"
    assert calls[-1]["shared_fs"] is False and calls[-1]["max_retries"] == 5
    assert main(["grid", "--params", QUICK, "--quiet", "--engine", "ray"]) == 0
    assert calls[-1]["address"] is None and "shared_fs" not in calls[-1] and "max_retries" not in calls[-1]
    assert main(["grid", "--params", QUICK, "--quiet"]) == 0
    assert "engine" not in calls[-1]  # the local engine, as before
    assert main(["grid", "--params", QUICK, "--quiet", "--address", "auto"]) == 2  # needs --engine ray

    import nbforget.publish.book

    monkeypatch.setattr(nbforget.publish.book, "build_book", lambda book_dir: tmp_path)
    assert main(["book", "--params", QUICK, "--engine", "ray", "--address", "auto"]) == 0
    assert calls[-1]["engine"] == "ray" and calls[-1]["address"] == "auto"


def test_unknown_engine_is_an_error():
    from nbforget.batch.grid import run_grid

    with pytest.raises(NbforgetError, match="engine must be one of local, ray"):
        run_grid(QUICK, engine="dask", progress=False)


def test_an_address_where_no_cluster_answers_fails_fast():
    from nbforget.batch.ray import connect  # raises before it imports Ray

    port = _free_ports(1)
    started = time.perf_counter()
    with pytest.raises(NbforgetError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        connect(f"127.0.0.1:{port}")
    assert time.perf_counter() - started < 30


# --------------------------------------------------------------------------- processes of the test cluster


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command line) of every process visible here."""
    found = {}
    proc = Path("/proc")
    if proc.is_dir():
        for folder in proc.iterdir():
            if not folder.name.isdigit():
                continue
            try:
                stat = (folder / "stat").read_text()
                command = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            found[int(folder.name)] = (int(fields[1]), int(fields[3]), command)
        return found
    import psutil  # not Linux

    for process in psutil.process_iter(["pid", "ppid", "cmdline"]):
        try:
            found[process.info["pid"]] = (process.info["ppid"], os.getsid(process.info["pid"]),
                                          " ".join(process.info["cmdline"] or []))
        except (OSError, psutil.Error):
            continue
    return found


def _session_processes(session: int) -> list[int]:
    """The processes of a session, and every descendant of them (notebook kernels start their own session)."""
    table = _processes()
    members = {pid for pid, (_, sid, _) in table.items() if sid == session}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _, _) in table.items() if ppid in members} - members
        members |= children
        grew = bool(children)
    members.discard(os.getpid())
    return sorted(members)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        return state[state.rindex(")") + 2] != "Z"  # a zombie has ended
    except OSError:
        if not Path("/proc").is_dir():
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False


def _end_session(session: int) -> list[int]:
    """Stop every process of the cluster's session by its pid (SIGKILL, as ``ray stop --force``
    does, but only this cluster's processes); returns those still alive after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        targets = [pid for pid in _session_processes(session) if _alive(pid)]
        if not targets or time.monotonic() > deadline:
            return targets
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, *, avoid: set[int] = frozenset()) -> int:
    """The first of `count` consecutive free ports."""
    for _ in range(200):
        first = random.randint(20000, 59000)
        if all(port not in avoid and _port_free(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def _cluster_environment() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1",
                TOKENIZERS_PARALLELISM="false")


class Cluster:
    def __init__(self, address: str, session: int) -> None:
        self.address = address
        self.session = session  # the session `ray start` ran in: every process of the cluster is in it

    def workers_running(self, task: str = "run_task") -> list[int]:
        """Worker processes of this cluster executing `task` (Ray names the process ``ray::<task>``)."""
        table = _processes()
        return [pid for pid in _session_processes(self.session)
                if pid in table and table[pid][2].startswith(f"ray::{task}")]


@pytest.fixture(scope="module")
def cluster(request, data_ready) -> Cluster:
    """A Ray head node on 127.0.0.1 with 2 CPUs, started for this module and stopped after it.

    Ray binds a node given as 127.0.0.1 to the machine's reachable address, so the cluster
    requires a token of its own (Ray's token authentication), which this process and the
    drivers it starts get through the environment; RAY_ADDRESS is unset for the module. A start
    that fails (Ray gives its raylet 30 s to register, which a loaded machine can miss) is
    cleaned up and tried once more.
    """
    environment = pytest.MonkeyPatch()
    request.addfinalizer(environment.undo)
    environment.setenv("RAY_AUTH_MODE", "token")
    environment.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    environment.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    environment.delenv("RAY_ADDRESS", raising=False)
    environment.setenv("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" in sys.modules:  # imported before this environment: make it read the token settings again
        try:
            from ray._private.authentication_test_utils import reset_auth_token_state
        except ImportError:
            pass
        else:
            reset_auth_token_state()
    pytest.importorskip("ray")  # after the environment: Ray reads its settings at import
    script = Path(sys.executable).with_name("ray")
    if not script.exists():
        pytest.fail(f"Ray is importable but its command {script} is missing", pytrace=False)
    temp_dir = Path(tempfile.mkdtemp(prefix="nbf-ray-", dir="/tmp" if Path("/tmp").is_dir() else None))
    sessions: list[int] = []

    def stop() -> None:
        left = [pid for session in sessions for pid in _end_session(session)]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes still running after the cluster was stopped: {left}"

    request.addfinalizer(stop)
    output = ""
    for attempt in range(2):
        ports: set[int] = set()
        for _ in range(4):  # the GCS, Ray Client server, dashboard and dashboard agent
            ports.add(_free_ports(1, avoid=ports))
        gcs, client, dashboard, agent = sorted(ports)
        workers = _free_ports(101, avoid=ports)
        command = [str(script), "start", "--head", f"--port={gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                   f"--min-worker-port={workers}", f"--max-worker-port={workers + 100}",
                   f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}",
                   f"--dashboard-agent-listen-port={agent}", "--include-dashboard=false", "--disable-usage-stats",
                   f"--temp-dir={temp_dir}"]
        # A session of its own: every daemon of the cluster, and every worker, belongs to it.
        starter = subprocess.Popen(command, env=_cluster_environment(), start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sessions.append(starter.pid)
        try:
            output, _ = starter.communicate(timeout=CLUSTER_START_SECONDS)
        except subprocess.TimeoutExpired:
            starter.kill()
            output = starter.communicate()[0] + f"\n(`ray start` did not finish in {CLUSTER_START_SECONDS} s)"
        if starter.returncode == 0:
            return Cluster(f"127.0.0.1:{gcs}", starter.pid)
        _end_session(starter.pid)
    pytest.fail(f"`ray start` failed twice; the last output:\n{output[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def workspace():
    """A folder of the module's own (pytest's base temporary folder may rotate under a long session)."""
    root = Path(tempfile.mkdtemp(prefix="nbforget-test-ray-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _overrides(runs: Path, strategies: list[str]) -> dict:
    return {"runs_dir": str(runs), "strategies": list(strategies)}


def _run_dir(runs: Path, strategy: str) -> Path:
    from nbforget.strategies import run_store

    return run_store(load_config(QUICK, {"runs_dir": str(runs)}), strategy, 1, 0).path  # named by its identity


def _scores(runs: Path, strategy: str) -> pd.DataFrame:
    return pd.read_csv(_run_dir(runs, strategy) / "scores.csv")


def _stored_config(runs: Path, strategy: str) -> dict:
    stored = yaml.safe_load((_run_dir(runs, strategy) / "config.yaml").read_text())
    stored["config"].pop("runs_dir", None)  # run files record no runs_dir
    stored["config"].pop("strategies")
    return stored


@pytest.fixture(scope="module")
def local_runs(workspace, data_ready) -> Path:
    """The reference: the quick profile's runs of LOCAL_STRATEGIES, executed by the local engine."""
    from nbforget.batch.grid import run_grid

    runs = workspace / "local" / "runs"
    started = time.perf_counter()
    failures = run_grid(QUICK, overrides=_overrides(runs, LOCAL_STRATEGIES), analyses=False, workers=1,
                        progress=False, book_dir=workspace / "local" / "book")
    print(f"\nlocal engine: {len(LOCAL_STRATEGIES)} runs in {time.perf_counter() - started:.0f} s")
    assert failures == [], failures
    return runs


# --------------------------------------------------------------------------- the grid on Ray (slow)


@pytest.mark.slow
def test_grid_on_ray_matches_the_local_engine(cluster, local_runs, workspace):
    """(a) Three runs as Ray tasks on a shared filesystem: the same scores as the local engine."""
    from nbforget.batch.grid import run_grid
    from nbforget.batch.notebooks import RUN_NOTEBOOK

    runs, book = workspace / "ray" / "runs", workspace / "ray" / "book"
    started = time.perf_counter()
    failures = run_grid(QUICK, overrides=_overrides(runs, LOCAL_STRATEGIES), analyses=False, progress=False,
                        book_dir=book, engine="ray", address=cluster.address)
    print(f"\nray engine: {len(LOCAL_STRATEGIES)} runs in {time.perf_counter() - started:.0f} s")
    assert failures == [], failures
    for strategy in LOCAL_STRATEGIES:
        folder = _run_dir(runs, strategy)
        assert (folder / "status").read_text().strip() == "complete"
        assert all((folder / name).is_file() for name in RUN_FILES)
        pd.testing.assert_frame_equal(_scores(runs, strategy), _scores(local_runs, strategy), check_exact=True)
        assert _stored_config(runs, strategy) == _stored_config(local_runs, strategy)
        assert (book / "generated" / "strategies" / f"{strategy}.ipynb").is_file()  # the book page
        notebook = json.loads((folder / RUN_NOTEBOOK).read_text())
        assert notebook["metadata"]["papermill"]["input_path"] == f"notebooks/strategies/{strategy}.py"
    assert not list(runs.glob(".nbforget-ray-probe-*")), "the driver's probe file was left behind"
    # A second grid finds every run complete and starts no task (nor Ray).
    stamps = {path: path.stat().st_mtime_ns for path in runs.rglob("*") if path.is_file()}
    assert run_grid(QUICK, overrides=_overrides(runs, LOCAL_STRATEGIES), analyses=False, progress=False,
                    book_dir=book, engine="ray", address=cluster.address) == []
    assert {path: path.stat().st_mtime_ns for path in runs.rglob("*") if path.is_file()} == stamps


DRIVER = textwrap.dedent("""
    import sys
    from nbforget.batch.grid import run_grid
    failures = run_grid({quick!r}, overrides={overrides!r}, analyses=False, progress=True, book_dir={book!r},
                        engine="ray", address={address!r})
    sys.exit(1 if failures else 0)
""")


@pytest.mark.slow
def test_killed_worker_is_retried_and_resumes_from_the_last_completed_step(cluster, local_runs, workspace):
    """(b) SIGKILL the worker once a language step is committed: Ray retries the task, the run
    resumes from that step (its record is not rewritten) and ends with the uninterrupted scores."""
    strategy = "vanilla"
    runs = workspace / "killed" / "runs"
    folder = _run_dir(runs, strategy)
    source = DRIVER.format(quick=QUICK, overrides=_overrides(runs, [strategy]), book=str(workspace / "killed" / "book"),
                           address=cluster.address)
    log = workspace / "killed" / "driver.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as output:
        driver = subprocess.Popen([sys.executable, "-c", source], env=_cluster_environment(), stdout=output,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RUN_SECONDS
        committed = []
        while time.monotonic() < deadline and driver.poll() is None:
            try:
                committed = json.loads((folder / "progress.json").read_text())["steps"]
            except (OSError, ValueError):
                committed = []
            if committed:
                break
            time.sleep(0.05)
        assert committed, f"no step was committed; driver log:\n{log.read_text()[-3000:]}"
        workers = cluster.workers_running()
        assert len(workers) == 1, f"expected one worker executing the run, found {workers}"
        table = _processes()
        kernels = [pid for pid, (ppid, _, _) in table.items() if ppid == workers[0]]
        assert kernels, "the worker has no notebook kernel"
        os.kill(workers[0], signal.SIGKILL)
        killed_at = time.perf_counter() - started
        status = (folder / "status").read_text().strip()
        assert status != "complete", "the run ended before the kill; nothing was tested"
        assert driver.wait(timeout=RUN_SECONDS) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    print(f"\nkilled after {len(committed)} step(s) at {killed_at:.0f} s; whole run {time.perf_counter() - started:.0f} s")
    text = log.read_text()
    print("\n".join(line for line in text.replace("\r", "\n").splitlines() if "retry" in line))
    assert f"retry 1 of {strategy} order 1 seed 0" in text, text[-3000:]
    assert "1 done, 0 failed, 1 retry(ies) after a worker died" in text, text[-3000:]
    # The first attempt's kernel ended with its worker (no stray process trains the same run).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in kernels):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in kernels), f"the killed worker's kernel {kernels} is still running"
    final = json.loads((folder / "progress.json").read_text())["steps"]
    assert [step["step"] for step in final] == [0, 1, 2]
    # Steps committed before the kill were not trained again: their records (with their training
    # time, which no second training would reproduce) are unchanged.
    assert final[:len(committed)] == committed
    assert (folder / "status").read_text().strip() == "complete"
    pd.testing.assert_frame_equal(_scores(runs, strategy), _scores(local_runs, strategy), check_exact=True)


@pytest.mark.slow
def test_without_shared_filesystem_files_come_back_and_an_unfinished_run_resumes(cluster, local_runs, workspace):
    """(c) --no-shared-fs: the worker runs in its own scratch folder, seeded with the driver's
    unfinished run and with the reference run its page compares against; the driver writes the
    returned files into its store."""
    from nbforget.engine import run_strategy
    from nbforget.batch.grid import run_grid
    from nbforget.batch.notebooks import RUN_NOTEBOOK
    from nbforget.batch.ray import SCRATCH_DIR

    strategy = "shared_lora"
    runs = workspace / "unshared" / "runs"
    overrides = _overrides(runs, [strategy, "vanilla"])
    # The reference run is in the driver's store (complete, so the grid does not run it again) ...
    shutil.copytree(_run_dir(local_runs, "vanilla"), _run_dir(runs, "vanilla"))
    reference = _run_dir(runs, "vanilla") / "config.yaml"
    reference.write_text(reference.read_text().replace(str(local_runs), str(runs)))
    # ... and the run itself stopped after its first language.
    run_strategy(load_config(QUICK, overrides), strategy, progress=False, stop_after=1)
    folder = _run_dir(runs, strategy)
    first = json.loads((folder / "progress.json").read_text())["steps"]
    assert len(first) == 1 and (folder / "status").read_text().strip() == "running"
    started = time.perf_counter()
    failures = run_grid(QUICK, overrides=overrides, analyses=False, progress=False,
                        book_dir=workspace / "unshared" / "book", engine="ray", address=cluster.address,
                        shared_fs=False)
    print(f"\nray engine without shared filesystem: 2 of 3 steps in {time.perf_counter() - started:.0f} s")
    assert failures == [], failures
    final = json.loads((folder / "progress.json").read_text())["steps"]
    assert [step["step"] for step in final] == [0, 1, 2] and final[0] == first[0]
    assert (folder / "status").read_text().strip() == "complete"
    assert all((folder / name).is_file() for name in RUN_FILES)
    assert not (folder / "checkpoint").exists()
    pd.testing.assert_frame_equal(_scores(runs, strategy), _scores(local_runs, strategy), check_exact=True)
    assert _stored_config(runs, strategy) == _stored_config(local_runs, strategy)
    assert "runs_dir" not in yaml.safe_load((folder / "config.yaml").read_text())["config"]  # no machine paths travel
    notebook = (folder / RUN_NOTEBOOK).read_text()
    scratch = Path(tempfile.gettempdir()) / SCRATCH_DIR
    assert f"{scratch}{os.sep}" not in notebook, "a path of the worker's scratch folder is left in the notebook"
    assert not list(scratch.glob(f"*/runs/quick/{strategy}")), "the worker's scratch folder was not removed"
    assert str(folder) in notebook  # the run directory, as the driver sees it
    assert "VANILLA's CBT on the same order and seed" in notebook  # the reference run reached the worker
    assert json.loads(notebook)["metadata"]["papermill"]["output_path"] == str(folder / RUN_NOTEBOOK)


@pytest.mark.slow
def test_gpus_asked_of_a_cluster_without_gpus_fail_before_anything_runs(cluster, workspace):
    from nbforget.batch.grid import run_grid

    runs = workspace / "gpu" / "runs"
    overrides = {**_overrides(runs, ["vanilla"]), "resources": {"num_gpus": 1}}
    with pytest.raises(NbforgetError, match=r"resources.num_gpus is 1 but the Ray cluster has no GPU"):
        run_grid(QUICK, overrides=overrides, analyses=False, progress=False, book_dir=workspace / "gpu" / "book",
                 engine="ray", address=cluster.address)
    assert not _run_dir(runs, "vanilla").exists()


@pytest.mark.slow
def test_a_failing_notebook_is_reported_with_its_error_and_kept_notebook_not_retried(cluster, workspace):
    """An error inside the notebook is the run's failure (the task is not retried); without a
    shared filesystem the failed notebook still reaches the driver's store."""
    from nbforget.batch.grid import run_grid

    notebooks = workspace / "failing" / "notebooks"
    (notebooks / "strategies").mkdir(parents=True)
    attempts = workspace / "failing" / "attempts"
    (notebooks / "strategies" / "vanilla.py").write_text(
        '# %% tags=["parameters"]\nparams_file = "x"\norder = None\nseed = None\noverrides = {}\n\n'
        f'# %%\nwith open({str(attempts)!r}, "a") as log:\n    log.write("attempt\\n")\n'
        'raise RuntimeError("deliberate failure")\n')
    runs = workspace / "failing" / "runs"
    failures = run_grid(QUICK, overrides=_overrides(runs, ["vanilla"]), analyses=False, progress=False,
                        book_dir=workspace / "failing" / "book", notebooks_dir=notebooks, engine="ray",
                        address=cluster.address, shared_fs=False)
    assert len(failures) == 1
    failure = failures[0]
    assert failure.notebook == notebooks / "strategies" / "vanilla.py"
    assert "RuntimeError: deliberate failure" in failure.error
    assert failure.output == _run_dir(runs, "vanilla") / "notebook.failed.ipynb" and failure.output.is_file()
    assert not (_run_dir(runs, "vanilla") / "notebook.ipynb").exists()
    assert str(failure.output) in str(failure)
    assert attempts.read_text() == "attempt\n"  # executed once: an error in the notebook is not retried

