"""Run directories: atomic writes, the store's commit point, the score matrix and loading runs."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nbforget import NbforgetError
from nbforget.config import REPO_ROOT
from nbforget.runs import (
    identity_digest,
    SCORE_COLUMNS,
    RunStore,
    atomic_write,
    base_scores,
    load_runs,
    order_label,
    provenance,
    score_matrix,
    scores_frame,
)

ORDER = ["th-TH", "en-US", "ru-RU"]  # deliberately not alphabetical

# R[i, j]: accuracy on ORDER[j] after step i, written out by hand; base row below.
MATRIX = np.array([
    [0.50, 0.20, 0.10],
    [0.40, 0.70, 0.30],
    [0.35, 0.60, 0.80],
])
BASE = np.array([0.05, 0.10, 0.15])


def long_frame(matrix=MATRIX, base=BASE, order=ORDER) -> pd.DataFrame:
    """The long form the engine writes, with a second metric and a dev split as distractors."""
    rows = []
    for step, values in [(-1, base)] + list(enumerate(matrix)):
        trained = "" if step < 0 else order[step]
        for language, value in zip(order, values):
            rows.append(("1", step, trained, language, "test", "accuracy", value))
            rows.append(("1", step, trained, language, "test", "macro_f1", value / 2))
            rows.append(("1", step, trained, language, "dev", "accuracy", 1 - value))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def no_temporary_files(folder) -> bool:
    return not [p for p in folder.rglob(".*") if p.is_file()]


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_and_bytes_leave_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "folder" / "file.json"
    atomic_write(target, "first")
    atomic_write(target, "second ü")
    assert target.read_text(encoding="utf-8") == "second ü"
    atomic_write(tmp_path / "blob.bin", b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["blob.bin", "file.json"]


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "progress.json"
    atomic_write(target, "old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]


# ----------------------------------------------------------------------------- score matrix


def test_score_matrix_from_a_long_frame():
    scores = long_frame().sample(frac=1, random_state=0)  # row order must not matter
    np.testing.assert_array_equal(score_matrix(scores, ORDER, metric="accuracy"), MATRIX)
    np.testing.assert_array_equal(score_matrix(scores, ORDER, metric="macro_f1"), MATRIX / 2)
    np.testing.assert_array_equal(score_matrix(scores, ORDER, metric="accuracy", split="dev"), 1 - MATRIX)
    np.testing.assert_array_equal(base_scores(scores, ORDER, metric="accuracy"), BASE)


def test_score_matrix_columns_follow_the_order_given():
    scores = long_frame()
    reordered = score_matrix(scores, ORDER[::-1], metric="accuracy")
    np.testing.assert_array_equal(reordered, MATRIX[:, ::-1])


def test_score_matrix_of_a_joint_run_has_one_row_and_missing_cells_are_nan():
    scores = long_frame(matrix=MATRIX[:1])
    scores = scores[~((scores.step == 0) & (scores.eval_language == "ru-RU"))]
    matrix = score_matrix(scores, ORDER, metric="accuracy")
    assert matrix.shape == (1, 3)
    assert np.isnan(matrix[0, 2]) and matrix[0, 0] == 0.5


def test_base_scores_absent_without_a_base_row():
    scores = long_frame()
    assert base_scores(scores[scores.step >= 0], ORDER, metric="accuracy") is None


def test_scores_frame_puts_the_base_row_first():
    frame = long_frame()
    progress = {"base": frame[frame.step == -1].to_dict("records"),
                "steps": [{"step": s, "scores": frame[frame.step == s].to_dict("records")} for s in range(3)]}
    pd.testing.assert_frame_equal(scores_frame(progress), frame)
    assert list(scores_frame({"base": None, "steps": []}).columns) == SCORE_COLUMNS


# ----------------------------------------------------------------------------- the store


def identity(strategy="vanilla", order=ORDER, seed=0, epochs=2) -> dict:
    return {"strategy": strategy, "order": list(order), "seed": seed, "settings": {"train": {"epochs": epochs}}}


def store_for(tmp_path, strategy="vanilla", order=1, seed=0, profile="quick", epochs=2) -> RunStore:
    return RunStore(tmp_path / "runs", profile, strategy, order, seed, identity(strategy, seed=seed, epochs=epochs))


def progress_after(steps: int) -> dict:
    frame = long_frame()
    return {"base": frame[frame.step == -1].to_dict("records"), "checkpoint": None,
            "steps": [{"step": s, "languages": [ORDER[s]], "scores": frame[frame.step == s].to_dict("records"),
                       "history": {"seconds": 1.0, "tokens": 10}, "drift": [{"layer": "layer.0",
                                                                             "relative_drift": 0.1 * s}]}
                      for s in range(steps)]}


def test_order_labels():
    assert order_label(1) == "1" and order_label("random:3") == "random-3"
    assert order_label(ORDER) == order_label(list(ORDER)) != order_label(ORDER[::-1])
    assert re.fullmatch(r"custom-[0-9a-f]{8}", order_label(ORDER))
    store = RunStore(Path("/r"), "quick", "vanilla", "random:3", 0, identity())
    assert store.path == Path(f"/r/quick/vanilla/order-random-3/seed-0-{identity_digest(identity())}")
    assert re.fullmatch(r"seed-0-[0-9a-f]{10}", store.path.name)
    other = RunStore(Path("/r"), "quick", "vanilla", "random:3", 0, identity(epochs=3))
    assert other.path.parent == store.path.parent and other.path != store.path  # another setting, another run


def test_store_lifecycle(tmp_path):
    store = store_for(tmp_path)
    assert store.status == "absent" and store.progress() == {"steps": [], "base": None, "checkpoint": None}
    store.start({"strategy": "vanilla", "seed": 0})
    assert store.status == "running"

    first = progress_after(1)
    store.commit_step(first, {"weight": torch.ones(2, 2), "strategy::fisher": torch.zeros(3)})
    assert store.progress()["checkpoint"] == "checkpoint/step-0.safetensors"
    assert torch.equal(store.load_checkpoint()["weight"], torch.ones(2, 2))

    second = progress_after(2)
    second["checkpoint"] = first["checkpoint"]
    store.commit_step(second, {"weight": torch.full((2, 2), 2.0)})
    assert sorted(p.name for p in (store.path / "checkpoint").iterdir()) == ["step-1.safetensors"]  # old one gone
    assert torch.equal(store.load_checkpoint()["weight"], torch.full((2, 2), 2.0))
    scores = store.scores()
    assert list(scores.columns) == SCORE_COLUMNS and set(scores.step) == {-1, 0, 1}

    store.finish({"metrics": {"final_average": np.float64(0.5)}, "sizes": np.arange(2)})
    assert store.status == "complete"
    assert not (store.path / "checkpoint").exists()
    assert store.result() == {"metrics": {"final_average": 0.5}, "sizes": [0, 1]}
    assert list(pd.read_csv(store.path / "drift.csv").columns) == ["step", "layer", "relative_drift"]
    assert no_temporary_files(store.path)


def test_recorded_settings_that_differ_are_named_and_refused(tmp_path):
    store = store_for(tmp_path)
    store.start({"strategy": "vanilla", "config": {"train": {"epochs": 2}}})
    store.commit_step(progress_after(1), None)
    store.start({"strategy": "vanilla", "config": {"train": {"epochs": 2}}})  # same settings: resumes
    # a folder whose recorded settings are not its name's (an edited config.yaml, say)
    stranger = store_for(tmp_path, epochs=3)
    stranger.path = store.path
    with pytest.raises(NbforgetError) as caught:
        stranger.start({"strategy": "vanilla"})
    message = str(caught.value)
    assert "differ" in message and "train.epochs: 2 -> 3" in message and "delete that folder" in message


def test_unfinished_run_without_steps_takes_the_new_record(tmp_path):
    store = store_for(tmp_path)
    store.start({"config": {"train": {"epochs": 2}}})
    store.start({"config": {"train": {"epochs": 3}}})
    assert "epochs: 3" in (store.path / "config.yaml").read_text()


# ----------------------------------------------------------------------------- loading runs


def make_run(tmp_path, strategy, order, seed, status, profile="quick", value=0.5) -> RunStore:
    store = store_for(tmp_path, strategy, order, seed, profile)
    frame = long_frame(matrix=MATRIX * value * 2)
    atomic_write(store.path / "scores.csv", frame.to_csv(index=False))
    store.set_status(status)
    return store


def test_load_runs_concatenates_complete_runs_only(tmp_path):
    make_run(tmp_path, "vanilla", 1, 0, "complete")
    make_run(tmp_path, "vanilla", "random:3", 1, "complete", value=0.25)
    make_run(tmp_path, "mono", 1, 0, "running")
    make_run(tmp_path, "multi", 1, 0, "failed")
    make_run(tmp_path, "mono", 1, 0, "complete", profile="other")
    frames = load_runs(tmp_path / "runs", profile="quick")
    rows = len(long_frame())
    assert len(frames) == 2 * rows
    assert set(frames.strategy) == {"vanilla"}
    assert sorted(frames.drop_duplicates("run_dir")[["order_spec", "seed"]].itertuples(index=False)) == [
        ("1", 0), ("random-3", 1)]
    assert set(frames.profile) == {"quick"}
    assert len(load_runs(tmp_path / "runs")) == 3 * rows  # all profiles
    one = frames[frames.order_spec == "random-3"]
    np.testing.assert_allclose(score_matrix(one, ORDER, metric="accuracy"), MATRIX * 0.5)


def test_load_runs_of_an_empty_folder_has_the_columns(tmp_path):
    frame = load_runs(tmp_path)
    assert frame.empty and {"strategy", "order_spec", "seed", "run_dir"} <= set(frame.columns)


def test_provenance_names_versions_and_commit():
    info = provenance(REPO_ROOT)
    assert info["versions"]["torch"] and info["versions"]["python"]
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"]) and isinstance(info["git_dirty"], bool)
    json.dumps(info)  # serialisable as is
