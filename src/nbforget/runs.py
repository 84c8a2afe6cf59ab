"""Run directories: one per (profile, strategy, order, seed), self-describing, written atomically.

Layout of ``runs/<profile>/<strategy>/order-<order>/seed-<seed>/``:

- ``config.yaml``   the resolved config of the run, with its strategy, order and seed
- ``progress.json`` the commit point: completed steps, their score rows, training history and
  drift, and the checkpoint file of the last completed step. Rewritten atomically after each step.
- ``scores.csv``    long form (order, step, trained_language, eval_language, split, metric, value);
  step -1 holds the base model's scores (fresh head, no fine-tuning)
- ``drift.csv``     per-step, per-layer relative distance of the weights from the base
- ``checkpoint/``   weights after the last completed step (safetensors), for resuming
- ``result.json``   written when the run completes: metrics, timings, versions, git commit
- ``status``        ``running``, ``complete`` or ``failed`` (then ``error.txt`` holds the traceback;
                    a process killed outright leaves ``running``)

A run killed at any point resumes from the last step recorded in ``progress.json``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nbforget import NbforgetError
from nbforget.config import REPO_ROOT, display_path

SCORE_COLUMNS = ["order", "step", "trained_language", "eval_language", "split", "metric", "value"]


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)  # a failed write leaves the old file and no litter
        raise


def order_label(order_spec) -> str:
    if isinstance(order_spec, (list, tuple)):
        import hashlib

        return "custom-" + hashlib.sha256(",".join(order_spec).encode()).hexdigest()[:8]
    return str(order_spec).replace(":", "-")


class RunStore:
    def __init__(self, root: Path, profile: str, strategy: str, order_spec, seed: int) -> None:
        self.path = Path(root) / profile / strategy / f"order-{order_label(order_spec)}" / f"seed-{seed}"

    # state
    @property
    def status(self) -> str:
        status = self.path / "status"
        return status.read_text().strip() if status.exists() else "absent"

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
        return json.loads(file.read_text())

    def start(self, config: dict) -> None:
        config_file = self.path / "config.yaml"
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        if config_file.exists() and self.progress()["steps"]:
            stored = yaml.safe_load(config_file.read_text())
            if stored != yaml.safe_load(text):
                raise NbforgetError(
                    f"{self.path} holds an unfinished run with a different config; delete that folder "
                    "or use another runs_dir to start over"
                )
        atomic_write(config_file, text)
        (self.path / "error.txt").unlink(missing_ok=True)
        self.set_status("running")

    def commit_step(self, progress: dict, checkpoint: dict | None) -> None:
        """Write the checkpoint (if any), then the progress file that makes the step count."""
        from safetensors.torch import save_file

        step = progress["steps"][-1]["step"] if progress["steps"] else -1
        previous = progress.get("checkpoint")
        if checkpoint is not None:
            name = f"checkpoint/step-{step}.safetensors"
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".ckpt.", dir=target.parent)
            os.close(handle)
            save_file({k: v.detach().contiguous().cpu() for k, v in checkpoint.items()}, temporary)
            os.replace(temporary, target)
            progress["checkpoint"] = name
        atomic_write(self.path / "progress.json", json.dumps(progress, indent=1))
        atomic_write(self.path / "scores.csv", scores_frame(progress).to_csv(index=False))
        if previous and previous != progress.get("checkpoint"):
            (self.path / previous).unlink(missing_ok=True)

    def result_record(self, *, strategy: str, profile: str, order: list[str], seed: int, metric: str,
                      chance: float, started: float, base_model: str, execution: dict) -> dict:
        """``result.json`` of a run whose every step is recorded: metrics recomputed from the scores,
        trainable parameters per step, timings, the base model and provenance."""
        from nbforget import metrics

        scores, steps = self.scores(), self.progress()["steps"]
        summary = metrics.run_metrics(score_matrix(scores, order, metric=metric),
                                      base_scores(scores, order, metric=metric))
        counts = {"+".join(s["languages"]): s["trainable_parameters"] for s in steps}
        return {
            "strategy": strategy, "profile": profile, "order": order, "seed": seed,
            "metrics": summary | {"chance": chance, "metric": metric},
            "trainable_parameters": {"per_step": counts, "max_per_step": max(counts.values(), default=0),
                                     "total": int(sum(counts.values()))},
            # what the strategy did at each step (`Strategy.step_record`), for its page
            "strategy_records": {"+".join(s["languages"]): s.get("strategy", {}) for s in steps},
            # results repeat exactly for a given thread count (``torch_threads``); another count
            # changes the floating-point reductions, and training carries the difference on
            "timings": {"seconds": round(time.perf_counter() - started, 2),
                        "train_seconds": sum(s["history"]["seconds"] for s in steps),
                        "train_tokens": sum(s["history"]["tokens"] for s in steps), **execution},
            # a local folder relative to the repository (no machine path in run files); a hub name as given
            "base_model": display_path(base_model) if Path(base_model).exists() else base_model,
            **provenance(REPO_ROOT),
        }

    def load_checkpoint(self) -> dict | None:
        from safetensors.torch import load_file

        name = self.progress().get("checkpoint")
        return load_file(self.path / name) if name else None

    def finish(self, result: dict) -> None:
        progress = self.progress()
        drift = pd.DataFrame([{"step": s["step"], **row} for s in progress["steps"] for row in s.get("drift", [])])
        atomic_write(self.path / "drift.csv", drift.to_csv(index=False))
        atomic_write(self.path / "result.json", json.dumps(result, indent=1, default=_json_default))
        name = progress.get("checkpoint")
        if name and not result.get("keep_checkpoint"):
            (self.path / name).unlink(missing_ok=True)
            if (self.path / "checkpoint").is_dir() and not any((self.path / "checkpoint").iterdir()):
                (self.path / "checkpoint").rmdir()
        self.set_status("complete")

    def scores(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "scores.csv")

    def result(self) -> dict:
        return json.loads((self.path / "result.json").read_text())


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
        if (folder / "status").exists() and (folder / "status").read_text().strip() == "complete":
            frame = pd.read_csv(folder / "scores.csv")
            frame["profile"] = folder.parts[-4]
            frame["strategy"] = folder.parts[-3]
            frame["order_spec"] = folder.parts[-2].removeprefix("order-")
            frame["seed"] = int(folder.parts[-1].removeprefix("seed-"))
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
