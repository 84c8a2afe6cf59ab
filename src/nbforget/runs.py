"""Run directories: one per run, named by what can change its result, written crash-safely.

A run is one strategy over one language order with one seed under one set of result-affecting
settings (`Strategy.run_identity`: the resolved config without where things run, where files
live, or which other runs a grid holds). Its folder
``runs/<profile>/<strategy>/order-<order>/seed-<seed>-<digest>/`` is readable and unique: the
digest is of that identity, so a request with another learning rate, LoRA rank or data size is
another run and never returns an old one.

- ``config.yaml``   the identity and the resolved config of the run (no machine paths)
- ``progress.json`` the commit record: completed steps, their score rows, training history,
  drift, what the strategy did, and the checkpoint file of the last completed step
- ``checkpoint/``   weights after the last completed step (safetensors), for resuming
- ``scores.csv``    long form (order, step, trained_language, eval_language, split, metric, value);
  step -1 holds the base model's scores (fresh head, no fine-tuning). Derived from the record.
  The evaluated languages are the order's, then the held-out ones (``held_out`` in config.yaml):
  scored at every step, never trained.
- ``drift.csv``     per-step, per-layer relative distance of the weights from the base (derived)
- ``result.json``   written when the run completes: metrics, timings, versions, git commit
- ``status``        ``running``, ``complete`` or ``failed`` (then ``error.txt`` holds the traceback;
                    a process killed outright leaves ``running``); ``complete`` is written last
Beside it, ``.seed-<seed>-<digest>.lock`` is held by the one process that writes the run
(`RunStore.writer`), and ``.seed-<seed>-<digest>.owner`` names that process.

Crash safety: every file is written to a temporary file and renamed into place; a step's data
(its checkpoint) is written before the record that points to it, and derived files after it;
``complete`` is written before anything is deleted. So a process killed at any point leaves a
run that resumes from its last recorded step and ends with the same files as an uninterrupted
run. Leftover temporary files and superseded checkpoints are removed by the next writer.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nbforget import NbforgetError, metrics
from nbforget.config import REPO_ROOT, display_path

SCORE_COLUMNS = ["order", "step", "trained_language", "eval_language", "split", "metric", "value"]
MIGRATE_HINT = "nbforget runs migrate"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0o666 less the umask (mkstemp uses 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode())
        _checkpoint_for_tests("before", path)
        os.replace(temporary, path)
        _checkpoint_for_tests("after", path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)  # a failed write leaves the old file and no litter
        raise


KILL_ENV = "NBFORGET_TEST_KILL_AT_WRITE"
_writes = {"count": 0}


def _checkpoint_for_tests(moment: str, path: Path) -> None:
    """Crash tests: ``NBFORGET_TEST_KILL_AT_WRITE=N:before`` (or ``:after``) kills this process
    with SIGKILL at the N-th file write of the process, just before (after) its rename."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    number, _, when = spec.partition(":")
    if moment == "before":
        _writes["count"] += 1
    if _writes["count"] == int(number) and moment == (when or "before"):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def order_label(order_spec) -> str:
    if isinstance(order_spec, (list, tuple)):
        return "custom-" + hashlib.sha256(",".join(order_spec).encode()).hexdigest()[:8]
    return str(order_spec).replace(":", "-")


def identity_digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _flatten(data, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict) and data:
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def differing_settings(first: dict, second: dict) -> list[str]:
    """Dotted keys whose values differ between two nested mappings, as ``key: a -> b``."""
    one, two = _flatten(first), _flatten(second)
    return [f"{key}: {one.get(key, '(absent)')!r} -> {two.get(key, '(absent)')!r}"
            for key in sorted(set(one) | set(two)) if one.get(key, "(absent)") != two.get(key, "(absent)")]


class RunStore:
    """The one reader and writer of a run folder (see the module docstring)."""

    def __init__(self, root: Path, profile: str, strategy: str, order_spec, seed: int, identity: dict) -> None:
        self.identity = identity
        self.digest = identity_digest(identity)
        folder = Path(root) / profile / strategy / f"order-{order_label(order_spec)}"
        self.path = folder / f"seed-{seed}-{self.digest}"
        self.legacy_path = folder / f"seed-{seed}"  # runs written before folders carried a digest
        # beside the run folder, not in it: a complete run holds only its files
        self.lock_file = folder / f".{self.path.name}.lock"
        self.owner_file = folder / f".{self.path.name}.owner"

    def __repr__(self) -> str:
        return f"RunStore({display_path(self.path)})"

    # state
    @property
    def status(self) -> str:
        return run_status(self.path)

    def set_status(self, value: str) -> None:
        atomic_write(self.path / "status", value + "\n")

    def fail(self, error: BaseException) -> None:
        """Mark the run failed and say why; its completed steps stay and a new start resumes them."""
        import traceback

        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        atomic_write(self.path / "error.txt", text)
        self.set_status("failed")

    def progress(self) -> dict:
        file = self.path / "progress.json"
        if not file.exists():
            return {"steps": [], "base": None, "checkpoint": None}
        try:
            progress = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(progress, dict) or not isinstance(progress.get("steps"), list):
                raise ValueError("not a progress record")
        except (ValueError, UnicodeDecodeError) as error:
            raise NbforgetError(
                f"{display_path(file)} is not a readable progress record ({error}); the run cannot resume: "
                f"delete {display_path(self.path)} to run it again from the start") from None
        return progress

    # one writer
    @contextmanager
    def writer(self, *, wait: bool = True, announce=print):
        """Hold the run's lock while writing it. Another process that holds it is named; by default
        this one waits for it (then sees what it left: usually a complete run). The lock is an
        advisory file lock that the operating system releases when its holder dies, so a killed
        process leaves no stale lock. (On a network filesystem without working locks two hosts
        could still write one run at once: keep one grid driver per runs folder.)"""
        from filelock import FileLock, Timeout

        if self.legacy_path.is_dir():
            raise NbforgetError(
                f"{display_path(self.legacy_path)} holds a run written before run folders were named by their "
                f"settings; run `{MIGRATE_HINT} --runs-dir {display_path(self.path.parents[3])}` once to rename "
                "such folders, or delete it")
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_file))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = _read_owner(self.owner_file)
            if not wait:
                raise NbforgetError(f"run {display_path(self.path)} is being written by {holder}; wait for it "
                                    "to finish or stop that process") from None
            announce(f"waiting for run {display_path(self.path)}: it is being written by {holder}")
            lock.acquire()
        try:
            self.owner_file.write_text(
                json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
            self._remove_litter()
            yield self
        finally:
            self.owner_file.unlink(missing_ok=True)
            lock.release()

    def _remove_litter(self) -> None:
        """Temporary files of interrupted writes, and checkpoints the record no longer points to
        (every checkpoint once the run is complete). Only the lock holder calls this."""
        keep = None if self.status == "complete" else self.progress().get("checkpoint")
        for folder in (self.path, self.path / "checkpoint"):
            if not folder.is_dir():
                continue
            for item in folder.iterdir():
                if not item.is_file():
                    continue
                litter = item.name.startswith(".") or (
                    folder.name == "checkpoint" and f"checkpoint/{item.name}" != keep)
                if litter:
                    item.unlink(missing_ok=True)
        checkpoint_dir = self.path / "checkpoint"
        if checkpoint_dir.is_dir() and not any(checkpoint_dir.iterdir()):
            checkpoint_dir.rmdir()

    def start(self, record: dict) -> None:
        """Record the run's identity and config (first start), or check them (a resume)."""
        config_file = self.path / "config.yaml"
        record = {**record, "identity": self.digest, "settings": self.identity["settings"]}
        if config_file.exists():
            stored = read_yaml_file(config_file)
            if stored.get("settings") != record["settings"] and self.progress()["steps"]:
                changes = differing_settings(stored.get("settings") or {}, record["settings"])
                raise NbforgetError(
                    f"{display_path(self.path)} holds an unfinished run whose settings differ from this "
                    f"request's: {'; '.join(changes[:8])}; delete that folder to start it over")
        atomic_write(config_file, yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
        (self.path / "error.txt").unlink(missing_ok=True)
        self.set_status("running")

    def commit_step(self, progress: dict, checkpoint: dict | None) -> None:
        """Write the checkpoint (if any), then the record that makes the step count, then the
        derived scores; the superseded checkpoint goes last."""
        from safetensors.torch import save_file

        step = progress["steps"][-1]["step"] if progress["steps"] else -1
        previous = progress.get("checkpoint")
        progress["checkpoint"] = None
        if checkpoint is not None:
            name = f"checkpoint/step-{step}.safetensors"
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".ckpt.", dir=target.parent)
            os.close(handle)
            save_file({k: v.detach().contiguous().cpu() for k, v in checkpoint.items()}, temporary)
            os.chmod(temporary, _file_mode())
            _checkpoint_for_tests("before", target)
            os.replace(temporary, target)
            _checkpoint_for_tests("after", target)
            progress["checkpoint"] = name
        atomic_write(self.path / "progress.json", json.dumps(progress, indent=1))
        atomic_write(self.path / "scores.csv", scores_frame(progress).to_csv(index=False))
        if previous and previous != progress["checkpoint"]:
            (self.path / previous).unlink(missing_ok=True)

    def result_record(self, *, strategy: str, profile: str, order: list[str], seed: int, metric: str,
                      chance: float, started: float, base_model: str, execution: dict,
                      data_dir: Path | None = None, held_out: list[str] | None = None) -> dict:
        """``result.json`` of a run whose every step is recorded: metrics recomputed from the scores
        (those of the papers over the trained languages of `order` only; the held-out languages'
        under ``held_out``, when the run has any), trainable parameters per step, timings, the base
        model and provenance."""
        steps = self.progress()["steps"]
        scores = scores_frame(self.progress())
        summary = metrics.run_metrics(score_matrix(scores, order, metric=metric),
                                      base_scores(scores, order, metric=metric))
        counts = {"+".join(s["languages"]): s["trainable_parameters"] for s in steps}
        extra = {"held_out": held_out_record(scores, list(held_out), metric=metric)} if held_out else {}
        return {
            "strategy": strategy, "profile": profile, "order": order, "seed": seed, "identity": self.digest,
            "metrics": summary | {"chance": chance, "metric": metric}, **extra,
            "trainable_parameters": {"per_step": counts, "max_per_step": max(counts.values(), default=0),
                                     "total": int(sum(counts.values()))},
            # what the strategy did at each step (`Strategy.step_record`), for its page
            "strategy_records": {"+".join(s["languages"]): s.get("strategy", {}) for s in steps},
            # results repeat exactly for a given thread count (``torch_threads``); another count
            # changes the floating-point reductions, and training carries the difference on
            "timings": {"seconds": round(time.perf_counter() - started, 2),
                        "train_seconds": sum(s["history"]["seconds"] for s in steps),
                        "train_tokens": sum(s["history"]["tokens"] for s in steps), **execution},
            "base_model": portable_path(base_model, data_dir),
            **provenance(REPO_ROOT),
        }

    def load_checkpoint(self) -> dict | None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        name = self.progress().get("checkpoint")
        if not name:
            return None
        file = self.path / name
        fix = (f"the run cannot resume from its last step: delete {display_path(self.path)} to run it "
               "again from the start")
        if not file.exists():
            raise NbforgetError(f"checkpoint {display_path(file)} named in progress.json is missing; {fix}")
        try:
            return load_file(file)
        except (SafetensorError, OSError, ValueError) as error:
            raise NbforgetError(f"checkpoint {display_path(file)} cannot be read ({error}); {fix}") from None

    def finish(self, result: dict) -> None:
        """Derived files from the record, the result, then ``complete``; cleaning up comes after."""
        progress = self.progress()
        atomic_write(self.path / "scores.csv", scores_frame(progress).to_csv(index=False))
        drift = pd.DataFrame([{"step": s["step"], **row} for s in progress["steps"] for row in s.get("drift", [])])
        atomic_write(self.path / "drift.csv", drift.to_csv(index=False))
        atomic_write(self.path / "result.json", json.dumps(result, indent=1, default=_json_default))
        self.set_status("complete")
        self._remove_litter()

    def scores(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "scores.csv")

    def result(self) -> dict:
        return json.loads((self.path / "result.json").read_text())


def migrate_record(folder: Path, store: RunStore) -> None:
    """Rewrite a legacy run's config.yaml and result.json in today's form (identity recorded, no
    machine paths), for `nbforget runs migrate`."""
    stored = read_yaml_file(folder / "config.yaml")
    config = {k: v for k, v in stored.get("config", {}).items() if k not in ("runs_dir", "data_dir")}
    record = {**stored, "config": config, "identity": store.digest, "settings": store.identity["settings"]}
    atomic_write(folder / "config.yaml", yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    result_file = folder / "result.json"
    if result_file.exists():
        result = json.loads(result_file.read_text())
        base = result.get("base_model")
        if base and Path(base).is_absolute():
            result["base_model"] = display_path(base)
        result["identity"] = store.digest
        atomic_write(result_file, json.dumps(result, indent=1))


def portable_path(source: str, data_dir: Path | None = None) -> str:
    """A base model as run files name it, never by a machine path: a hub name as given; a local
    folder relative to the repository, or as ``<data_dir>/...`` under the data folder."""
    path = Path(source)
    if not path.exists():
        return source
    shown = display_path(path)
    if Path(shown).is_absolute() and data_dir is not None and path.resolve().is_relative_to(Path(data_dir).resolve()):
        return "<data_dir>/" + path.resolve().relative_to(Path(data_dir).resolve()).as_posix()
    return shown


def read_complete_run(folder: Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    """A complete run's recorded config, result, scores and drift (for analyses, which only read);
    an error naming the folder when it is not complete, or a file that cannot be read."""
    folder = Path(folder)
    state = run_status(folder)
    if state != "complete":
        hint = (f"its error is in {display_path(folder / 'error.txt')}; fix it and run again to resume"
                if state == "failed" else "run it first")
        raise NbforgetError(f"{display_path(folder)} is not a complete run (status: {state}); {hint}")
    stored = read_yaml_file(folder / "config.yaml")
    try:
        result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        scores = pd.read_csv(folder / "scores.csv")
    except (OSError, ValueError) as error:
        raise NbforgetError(f"{display_path(folder)} is marked complete but cannot be read ({error}); delete it "
                            "and run it again") from None
    drift = pd.DataFrame(columns=["step", "layer", "relative_drift"])
    drift_file = folder / "drift.csv"
    if drift_file.exists() and drift_file.stat().st_size > 1:
        try:
            drift = pd.read_csv(drift_file)
        except pd.errors.EmptyDataError:
            pass
    return stored, result, scores, drift


def run_status(folder: Path) -> str:
    """``running``, ``complete``, ``failed`` or ``absent`` (no status file)."""
    status = Path(folder) / "status"
    return status.read_text().strip() if status.exists() else "absent"


def _read_owner(file: Path) -> str:
    try:
        owner = json.loads(file.read_text())
        return f"process {owner['pid']} on {owner['host']}"
    except (OSError, ValueError, KeyError):
        return "another process"


def read_yaml_file(path: Path) -> dict:
    """A run's YAML file, or an error naming it and the fix."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise NbforgetError(f"{display_path(path)} is not valid YAML ({str(error).splitlines()[0]}); delete "
                            f"{display_path(Path(path).parent)} to run it again from the start") from None
    if not isinstance(data, dict):
        raise NbforgetError(f"{display_path(path)} does not hold a run's settings; delete "
                            f"{display_path(Path(path).parent)} to run it again from the start")
    return data


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def scores_frame(progress: dict) -> pd.DataFrame:
    rows = []
    if progress.get("base"):
        rows += progress["base"]
    for step in progress["steps"]:
        rows += step["scores"]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def score_matrix(scores: pd.DataFrame, order: list[str], *, metric: str, split: str = "test") -> np.ndarray:
    """Rows = steps (0..), columns = languages in `order`; the base row (step -1) is left out."""
    part = scores[(scores.metric == metric) & (scores.split == split) & (scores.step >= 0)]
    table = part.pivot_table(index="step", columns="eval_language", values="value", aggfunc="first")
    return table.reindex(columns=list(order)).to_numpy(dtype=float)


def base_scores(scores: pd.DataFrame, order: list[str], *, metric: str, split: str = "test") -> np.ndarray | None:
    part = scores[(scores.metric == metric) & (scores.split == split) & (scores.step == -1)]
    if part.empty:
        return None
    return part.set_index("eval_language").reindex(list(order))["value"].to_numpy(dtype=float)


def held_out_record(scores: pd.DataFrame, held_out: list[str], *, metric: str, split: str = "test") -> dict:
    """What ``result.json`` holds about the held-out languages: their list, the means over them
    (`metrics.held_out_metrics`), and per language its base, best, final score, the step of its
    best score, its change against the base and its erosion (`metrics.held_out_erosion`)."""
    matrix = score_matrix(scores, held_out, metric=metric, split=split)
    base = base_scores(scores, held_out, metric=metric, split=split)
    erosion = metrics.held_out_erosion(matrix)
    change = metrics.held_out_change(matrix, base) if base is not None else np.full(len(held_out), np.nan)
    per_language = {
        language: {"base": None if base is None else float(base[h]), "best": float(matrix[:, h].max()),
                   "best_step": int(np.argmax(matrix[:, h])), "final": float(matrix[-1, h]),
                   "change": None if base is None else float(change[h]), "erosion": float(erosion[h])}
        for h, language in enumerate(held_out)}
    return {"languages": held_out, "metrics": metrics.held_out_metrics(matrix, base), "per_language": per_language}


def provenance(repo: Path) -> dict:
    """Versions of the stack, and the git commit with a dirty flag."""
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for package in ("nbforget", "torch", "transformers", "peft", "tokenizers", "numpy", "pandas"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty, "machine": platform.machine()}


def load_runs(root: Path, profile: str | None = None) -> pd.DataFrame:
    """All complete runs under `root` as one long DataFrame (with strategy, order, seed columns)."""
    frames = []
    pattern = f"{profile}/*/order-*/seed-*" if profile else "*/*/order-*/seed-*"
    for folder in sorted(Path(root).glob(pattern)):
        if run_status(folder) == "complete":
            frame = pd.read_csv(folder / "scores.csv")
            frame["profile"] = folder.parts[-4]
            frame["strategy"] = folder.parts[-3]
            frame["order_spec"] = folder.parts[-2].removeprefix("order-")
            frame["seed"] = int(folder.parts[-1].removeprefix("seed-").split("-")[0])  # seed-<seed>-<digest>
            frame["run_dir"] = str(folder)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=SCORE_COLUMNS + ["profile", "strategy", "order_spec", "seed", "run_dir"])
    return pd.concat(frames, ignore_index=True)


def run_status(folder: str | Path) -> str:
    """The status of the run directory `folder`: ``running``, ``complete``, ``failed`` or ``absent``
    (what `RunStore.status` reads, for a folder found on disk rather than named by its parts)."""
    status = Path(folder) / "status"
    return status.read_text().strip() if status.exists() else "absent"
