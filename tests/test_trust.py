"""Runs as data: identity by settings, crash-safe commits, one writer per run.

These tests break runs the way users do: a process killed (SIGKILL, in a real subprocess) at every
file write of a run, two processes started on the same run, a setting changed between two
requests, a runs folder moved. In every case a run marked complete must hold exactly what an
uninterrupted run of the requested settings holds.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbforget.engine import run_strategy
from nbforget.runs import KILL_ENV
from nbforget.strategies import run_store

from conftest import QUICK_PROFILE, make_quick_config

# Two languages and one epoch: every kind of write of a run, in seconds.
SMALL = {"languages": ["en-US", "ru-RU"], "train": {"epochs": 1}}

RUN_ONE = textwrap.dedent("""
    import json, sys
    from nbforget.config import load_config
    from nbforget.engine import run_strategy
    config = load_config(sys.argv[1], json.loads(sys.argv[2]))
    print(run_strategy(config, sys.argv[3], progress=False))
""")


def run_in_subprocess(runs_dir: Path, strategy: str, overrides: dict, *, environment: dict | None = None,
                      wait: bool = True):
    settings = {**overrides, "runs_dir": str(runs_dir)}
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_ONE, str(QUICK_PROFILE), json.dumps(settings), strategy],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(environment or {})})
    if not wait:
        return process
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def final_files(folder: Path) -> dict[str, object]:
    """What a complete run holds, without what differs between two honest runs (timings)."""
    result = json.loads((folder / "result.json").read_text())
    for key in ("timings", "git_commit", "git_dirty"):
        result.pop(key, None)
    progress = json.loads((folder / "progress.json").read_text())
    for step in progress["steps"]:
        step["history"].pop("seconds", None)
    return {
        "status": (folder / "status").read_text(),
        "config.yaml": (folder / "config.yaml").read_text(),
        "scores.csv": (folder / "scores.csv").read_text(),
        "drift.csv": (folder / "drift.csv").read_text(),
        "result": result,
        "progress": progress,
        "files": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                        if p.is_file()),
    }


@pytest.fixture(scope="module")
def solo(tmp_path_factory, data_ready):
    """Uninterrupted runs of VANILLA and SHARED LoRA on the small settings, for comparison."""
    root = tmp_path_factory.mktemp("solo")
    config = make_quick_config(root, SMALL)
    return {name: final_files(run_strategy(config, name, progress=False)) for name in ("vanilla", "shared_lora")}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["vanilla", "shared_lora"])
def test_a_kill_at_every_write_resumes_to_the_uninterrupted_run(solo, tmp_path, strategy):
    write = 0
    while True:
        write += 1
        runs = tmp_path / f"kill-{write}"
        code, _, err = run_in_subprocess(runs, strategy, SMALL, environment={KILL_ENV: f"{write}:before"})
        if code == 0:  # fewer writes than `write`: the run finished untouched, every write was tried
            break
        assert code == -signal.SIGKILL, err[-3000:]
        config = make_quick_config(runs, SMALL)
        store = run_store(config, strategy)
        assert store.status != "complete", f"killed at write {write}, yet marked complete"
        path = run_strategy(config, strategy, progress=False)  # the user runs the same command again
        assert final_files(path) == solo[strategy], f"killed at write {write}"
        assert not list(path.rglob(".*")), f"litter after write {write}"
    assert write > 8  # the run has at least start, two steps and finish to be killed in


@pytest.mark.slow
def test_two_processes_on_one_run_leave_one_run_identical_to_a_solo_run(solo, tmp_path):
    runs = tmp_path / "runs"
    processes = [run_in_subprocess(runs, "vanilla", SMALL, wait=False) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    folders = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(folders) == 1  # both name the same run
    folder = Path(folders.pop())
    assert final_files(folder) == solo["vanilla"]
    assert len(list((runs / "quick" / "vanilla").glob("*/seed-*"))) == 1


@pytest.mark.slow
def test_a_changed_setting_is_another_run_and_a_moved_folder_the_same(quick_config, tmp_path):
    config = quick_config(SMALL)
    first = run_strategy(config, "vanilla", progress=False)
    before = (first / "scores.csv").read_text()
    changed = quick_config({**SMALL, "train": {"epochs": 2, "learning_rate": 0.005}})
    second = run_strategy(changed, "vanilla", progress=False)
    assert second != first and (second / "status").read_text().strip() == "complete"
    history = [s["history"]["loss"] for s in json.loads((second / "progress.json").read_text())["steps"]]
    assert [len(losses) for losses in history] == [2, 2]  # trained again with two epochs, not the old run
    assert (first / "scores.csv").read_text() == before  # the first run is left as it was
    # settings that cannot change VANILLA's result find the same run
    for same in ({**SMALL, "strategies": ["vanilla"]}, {**SMALL, "strategy": {"lora": {"rank": 8}}},
                 {**SMALL, "train": {"epochs": 1, "lora_learning_rate": 0.5}}, {**SMALL, "seeds": [0, 1]}):
        assert run_strategy(quick_config(same), "vanilla", progress=False) == first
    moved = tmp_path / "elsewhere"
    shutil.move(str(config.runs_path), moved)
    found = run_strategy(quick_config(SMALL, runs_dir=moved), "vanilla", progress=False)
    assert found == moved / first.relative_to(config.runs_path)
    assert (found / "scores.csv").read_text() == before


@pytest.mark.slow
def test_run_files_are_readable_like_any_file_the_user_writes(quick_config):
    path = run_strategy(quick_config(SMALL), "vanilla", progress=False)
    umask = os.umask(0)
    os.umask(umask)
    for file in path.rglob("*"):
        if file.is_file():
            assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file
    assert not (path / "checkpoint").exists()  # no checkpoint survives a complete run
    config_text = (path / "config.yaml").read_text()
    assert str(path.parents[3]) not in config_text and "runs_dir" not in config_text  # no machine paths
    assert not Path(json.loads((path / "result.json").read_text())["base_model"]).is_absolute()


def test_a_legacy_run_folder_is_refused_with_the_command_that_fixes_it(quick_config):
    config = quick_config(SMALL)
    store = run_store(config, "vanilla")
    store.legacy_path.mkdir(parents=True)
    (store.legacy_path / "status").write_text("complete\n")
    with pytest.raises(Exception, match=r"older|before run folders.*nbforget runs migrate"):
        with store.writer():
            pass
    assert not store.path.exists()


@pytest.mark.slow
def test_migrate_renames_a_legacy_run_to_its_identity(quick_config, tmp_path):
    from nbforget import cli

    config = quick_config(SMALL)
    path = run_strategy(config, "vanilla", progress=False)
    legacy = path.parent / "seed-0"
    path.rename(legacy)  # the folder name of the layout before identities
    written = (legacy / "scores.csv").stat().st_mtime_ns
    assert cli.main(["runs", "migrate", "--runs-dir", str(config.runs_path)]) == 0
    assert path.is_dir() and not legacy.exists()
    assert run_strategy(config, "vanilla", progress=False) == path
    assert (path / "scores.csv").stat().st_mtime_ns == written  # found, not trained again
