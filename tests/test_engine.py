"""The engine end to end on the quick profile, and the training loop's parts.

Table-driven over the strategy registry: a strategy is tested here the moment it is registered.
The quick profile's scores are near chance (tens of examples, a 64-wide encoder), so equality of
two runs is checked on the weights as well: the per-layer drift records and the training
histories change with any change of the weights, where accuracy on 24 sentences may not.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nbforget import NbforgetError, cli, engine, tasks
from nbforget.config import REPO_ROOT
from nbforget.data import load_task
from nbforget.data.types import CLASSIFICATION, TAGGING, Example, LanguageTask
from nbforget.engine import run_strategy
from nbforget.tasks import prepare
from nbforget.train import language_seed
from nbforget.languages import resolve_order
from nbforget.models import default_device, load_task_model, train_tokenizer
from nbforget.runs import RunStore, score_matrix
from nbforget.strategies import run_store
from nbforget.strategies import REGISTRY, RunContext
from nbforget.encoding import IGNORE, collate, encode, length_grouped_batches

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"

STRATEGIES = sorted(REGISTRY)


# ----------------------------------------------------------------------------- helpers


def run_order(path: Path) -> list[str]:
    return json.loads((path / "result.json").read_text())["order"]


def expected_steps(config, strategy: str, order: list[str]):
    """The steps the strategy declares for this order (no model is built)."""
    prepared = prepare(config, progress=False)
    context = RunContext(config, prepared.task, prepared.base_source, config.seeds[0],
                         default_device(), tuple(order))
    return REGISTRY[strategy](context).steps(tuple(order))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def step_records(path: Path) -> dict[int, dict]:
    """Per step: languages, training history (without wall time) and drift, from progress.json."""
    progress = json.loads((path / "progress.json").read_text())
    return {s["step"]: {"languages": s["languages"], "drift": s["drift"],
                        "history": {k: v for k, v in s["history"].items() if k != "seconds"}}
            for s in progress["steps"]}


def assert_same_run(path: Path, reference: Path) -> None:
    """Two runs of one strategy, order and seed hold identical scores, weights drift and histories."""
    pd.testing.assert_frame_equal(pd.read_csv(path / "scores.csv"), pd.read_csv(reference / "scores.csv"),
                                  check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(path / "drift.csv"), pd.read_csv(reference / "drift.csv"),
                                  check_exact=True)
    assert step_records(path) == step_records(reference)
    results = [json.loads((folder / "result.json").read_text()) for folder in (path, reference)]
    for key in ("strategy", "order", "seed", "metrics", "trainable_parameters"):
        assert results[0][key] == results[1][key], key
    assert results[0]["timings"]["train_tokens"] == results[1]["timings"]["train_tokens"]


# ----------------------------------------------------------------------------- every strategy


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_runs_to_a_complete_score_matrix(quick_runs, strategy):
    path = quick_runs.path(strategy)
    config = quick_runs.config
    order = list(resolve_order(config.orders[0], config.languages))
    assert run_order(path) == order
    assert (path / "status").read_text().strip() == "complete"

    result = json.loads((path / "result.json").read_text())
    metric = result["metrics"]["metric"]
    scores = pd.read_csv(path / "scores.csv")
    matrix = score_matrix(scores, order, metric=metric)
    steps = expected_steps(config, strategy, order)
    assert matrix.shape == (len(steps), len(order))
    assert not np.isnan(matrix).any(), f"{strategy}: every language is scored after every step\n{matrix}"
    assert ((matrix >= 0) & (matrix <= 1)).all()
    assert sorted(scores.step.unique()) == [-1] + [s.index for s in steps]  # base row, then the steps
    assert set(scores[scores.step == -1].eval_language) == set(order)
    assert scores.value.between(0, 1).all()

    assert result["strategy"] == strategy and result["order"] == order
    assert math.isclose(result["metrics"]["final_average"], float(np.mean(matrix[-1])))
    if len(steps) > 1:
        for name in ("cbt", "cft", "forgetting", "fwt"):
            assert name in result["metrics"]
    counts = result["trainable_parameters"]
    assert len(counts["per_step"]) == len(steps)
    assert all(isinstance(n, int) and n > 0 for n in counts["per_step"].values())
    assert counts["max_per_step"] == max(counts["per_step"].values())
    assert counts["total"] == sum(counts["per_step"].values())
    for package in ("python", "torch", "transformers", "peft", "nbforget"):
        assert result["versions"][package], package
    assert len(result["git_commit"]) == 40 and isinstance(result["git_dirty"], bool)
    assert result["timings"]["train_tokens"] > 0
    assert result["timings"]["torch_threads"] == torch.get_num_threads()  # reproducible per thread count

    drift = pd.read_csv(path / "drift.csv")
    assert set(drift.step) == {s.index for s in steps}
    assert not (path / "checkpoint").exists()  # removed once the run is complete
    assert not [p for p in path.rglob(".*")], "temporary files left behind"


@pytest.mark.slow
def test_lora_strategies_train_fewer_parameters(quick_runs):
    full = json.loads((quick_runs.path("vanilla") / "result.json").read_text())["trainable_parameters"]
    for strategy in (name for name in STRATEGIES if REGISTRY[name].uses_lora):
        lora = json.loads((quick_runs.path(strategy) / "result.json").read_text())["trainable_parameters"]
        assert lora["max_per_step"] < full["max_per_step"] / 5, strategy


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_complete_run_is_skipped(quick_runs, strategy, monkeypatch):
    path = quick_runs.path(strategy)
    before = snapshot(path)

    def no_work(*args, **kwargs):
        raise AssertionError("a complete run must not load data or models")

    monkeypatch.setattr(engine, "prepare", no_work)
    started = time.perf_counter()
    assert run_strategy(quick_runs.config, strategy, progress=False) == path
    assert time.perf_counter() - started < 5
    assert snapshot(path) == before


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resume_after_stop_matches_uninterrupted_run(quick_runs, quick_config, strategy):
    config = quick_config()
    path = run_strategy(config, strategy, progress=False, stop_after=1)
    steps = expected_steps(config, strategy, run_order(quick_runs.path(strategy)))
    if len(steps) > 1:
        assert (path / "status").read_text().strip() == "running"
        assert list(step_records(path)) == [steps[0].index]
        assert not (path / "result.json").exists()
    assert run_strategy(config, strategy, progress=False) == path
    assert (path / "status").read_text().strip() == "complete"
    assert_same_run(path, quick_runs.path(strategy))


@pytest.mark.slow
def test_changed_config_does_not_resume_an_unfinished_run(quick_config):
    runs = quick_config().runs_path
    unfinished = run_strategy(quick_config(), "vanilla", progress=False, stop_after=1)
    changed = quick_config({"train": {"learning_rate": 0.002}}, runs_dir=runs)
    path = run_strategy(changed, "vanilla", progress=False)  # another setting: its own run, from the start
    assert path != unfinished and (path / "status").read_text().strip() == "complete"
    assert (unfinished / "status").read_text().strip() == "running"  # the unfinished run is left as it was


@pytest.mark.slow
def test_a_run_that_raises_is_marked_failed_and_resumes(quick_runs, quick_config, monkeypatch):
    config = quick_config()
    vanilla = REGISTRY["vanilla"]
    original = vanilla.after_language

    def after_language_failing_at_the_second_step(self, model, step, train_data=None):
        if step.index == 1:
            raise RuntimeError("disk full while saving")
        return original(self, model, step, train_data)

    monkeypatch.setattr(vanilla, "after_language", after_language_failing_at_the_second_step)
    with pytest.raises(RuntimeError, match="disk full"):
        run_strategy(config, "vanilla", progress=False)
    path = run_store(config, "vanilla").path
    assert (path / "status").read_text().strip() == "failed"
    assert "disk full while saving" in (path / "error.txt").read_text()
    assert list(step_records(path)) == [0]  # the completed step is kept
    assert not (path / "result.json").exists()

    monkeypatch.setattr(vanilla, "after_language", original)
    run_strategy(config, "vanilla", progress=False)
    assert (path / "status").read_text().strip() == "complete"
    assert not (path / "error.txt").exists()
    assert_same_run(path, quick_runs.path("vanilla"))


# ----------------------------------------------------------------------------- resuming after a kill


def wait_for_steps(process: subprocess.Popen, progress_file: Path, steps: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return -1
        if progress_file.exists():
            done = len(json.loads(progress_file.read_text())["steps"])  # written atomically
            if done >= steps:
                return done
        time.sleep(0.02)
    return 0


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(quick_runs, tmp_path):
    runs = tmp_path / "runs"
    script = Path(sys.executable).with_name("nbforget")
    command = ([str(script)] if script.exists() else [sys.executable, "-m", "nbforget.cli"]) + [
        "run", "--params", str(QUICK_PROFILE), "--strategy", "vanilla", "--quiet", "--set", f"runs_dir={runs}"]
    reference = quick_runs.path("vanilla")
    path = runs / reference.relative_to(quick_runs.config.runs_path)
    log = tmp_path / "first.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            done = wait_for_steps(process, path / "progress.json", 1, timeout=300)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert done != -1, f"the run ended before it was killed:\n{log.read_text()}"
    assert done > 0, "no step completed within the time limit"
    assert process.returncode == -signal.SIGKILL
    assert (path / "status").read_text().strip() == "running"
    assert len(step_records(path)) < len(run_order(reference)), "the run finished before the kill"

    assert cli.main(command[command.index("run"):]) == 0  # the same command, in this process
    assert (path / "status").read_text().strip() == "complete"
    pd.testing.assert_frame_equal(pd.read_csv(path / "scores.csv"), pd.read_csv(reference / "scores.csv"))
    assert_same_run(path, reference)


# ----------------------------------------------------------------------------- strategy properties


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mono", "nonshared_lora"])
def test_own_model_scores_do_not_depend_on_position(quick_runs, strategy):
    """A language's own model (MONO) or adapter (NON-SHARED LoRA) starts from the same weights at
    any position, and `language_seed` fixes its training: R[l, l] must not depend on the order."""
    first = quick_runs.path(strategy)
    order = run_order(first)
    rotated = order[1:] + order[:1]  # every language moves
    second = quick_runs.path(strategy, order=rotated)
    assert run_order(second) == rotated
    records = {path: step_records(path) for path in (first, second)}
    scores = {path: pd.read_csv(path / "scores.csv") for path in (first, second)}
    for language in order:
        own = {}
        for path in (first, second):
            step = next(i for i, r in records[path].items() if r["languages"] == [language])
            frame = scores[path]
            cells = frame[(frame.step == step) & (frame.eval_language == language)]
            own[path] = (sorted(zip(cells.split, cells.metric, cells.value)), records[path][step]["history"],
                         records[path][step]["drift"])
        assert own[first] == own[second], language


@pytest.mark.slow
def test_nonshared_lora_leaves_base_weights_bitwise_unchanged(quick_config):
    config = quick_config()
    path = run_strategy(config, "nonshared_lora", progress=False, stop_after=2)
    checkpoint = run_store(config, "nonshared_lora").load_checkpoint()
    assert checkpoint is not None, f"no checkpoint after two of three steps in {path}"
    prepared = prepare(config, progress=False)
    base = load_task_model(prepared.base_source, prepared.kind, len(prepared.labels),
                           seed=config.seeds[0]).state_dict()

    compared = set()
    for name, tensor in checkpoint.items():
        if "lora_" in name or "modules_to_save" in name:
            continue
        canonical = (name.removeprefix("base_model.model.").replace(".base_layer.", ".")
                     .replace(".original_module.", "."))
        assert torch.equal(tensor, base[canonical]), f"{name} changed"
        compared.add(canonical)
    assert compared == set(base), f"not compared: {sorted(set(base) - compared)[:5]}"
    trained = [t for n, t in checkpoint.items() if "lora_B" in n]
    assert len(trained) > 0 and all(t.abs().sum() > 0 for t in trained)  # the adapters did train
    adapters = {n.split("lora_A.")[1].split(".")[0] for n in checkpoint if "lora_A." in n}
    assert len(adapters) == 2


@pytest.mark.slow
def test_multi_lora_trains_one_joint_step_of_only_an_adapter_and_the_head(quick_runs):
    """MULTI LoRA (the paper's MULTI with a rank): one step on every language of the order at once,
    like MULTI, training only the LoRA adapter and the head on the frozen base, like SHARED LoRA."""
    from nbforget.strategies import Step

    config = quick_runs.config
    order = tuple(resolve_order(config.orders[0], config.languages))
    steps = expected_steps(config, "multi_lora", list(order))
    assert steps == [Step(0, order)] == expected_steps(config, "multi", list(order))
    prepared = prepare(config, progress=False)
    strategy = REGISTRY["multi_lora"](RunContext(config, prepared.task, prepared.base_source, config.seeds[0],
                                                 default_device(), order))
    model = strategy.initial_model()
    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in name or "modules_to_save" in name for name in trainable), sorted(trainable)
    assert any("lora_" in name for name in trainable) and any("modules_to_save" in name for name in trainable)
    assert strategy.learning_rate == config.train.lora_learning_rate

    path = quick_runs.path("multi_lora")
    assert [record["languages"] for record in step_records(path).values()] == [list(order)]
    result = json.loads((path / "result.json").read_text())
    counts = result["trainable_parameters"]
    assert counts["per_step"] == {"+".join(order): sum(trainable.values())}
    full = json.loads((quick_runs.path("multi") / "result.json").read_text())["trainable_parameters"]
    assert counts["max_per_step"] < full["max_per_step"] / 5
    record = result["strategy_records"]["+".join(order)]
    assert record["adapter_parameters"] + record["head_parameters"] == sum(trainable.values())


# ----------------------------------------------------------------------------- data preparation


def test_language_seed_depends_on_seed_and_language_only():
    assert language_seed(0, "en-US") == language_seed(0, "en-US")
    assert len({language_seed(0, "en-US"), language_seed(1, "en-US"), language_seed(0, "de-DE")}) == 3


def test_capped_splits_are_evenly_spaced_and_keep_every_label():
    examples = [Example(("w",), label=label) for label in "aaaaabbbbbcccccddddd"]  # sorted by label
    task = LanguageTask("sib200", "en-US", CLASSIFICATION, {"train": examples, "dev": examples[:3],
                                                            "test": examples}, tuple("abcd"))
    limited = tasks._limit(task, 8, 4)
    assert [e.label for e in limited.splits["test"]] == list("abcd")
    assert Counter(e.label for e in limited.splits["train"]) == Counter("aabbccdd")
    assert limited.splits["dev"] == examples[:3]  # fewer than the cap: all kept
    assert tasks._limit(task, None, None) is task


@pytest.mark.slow
def test_quick_profile_test_splits_hold_several_labels(quick_config):
    config = quick_config()
    prepared = prepare(config, progress=False)
    for language in config.languages:
        test = prepared.encoded[(language, "test")]
        assert len(test) == config.train.max_eval_examples
        assert len(set(test.gold)) > 3, f"{language}: the capped test split is nearly one label"
        assert len(prepared.encoded[(language, "train")]) == config.train.max_train_examples


# ----------------------------------------------------------------------------- train.py units


def test_length_grouped_batches_cover_every_index_once_and_are_seeded():
    lengths = torch.randint(3, 64, (1000,), generator=torch.Generator().manual_seed(1)).tolist()

    def batches(seed):
        return length_grouped_batches(lengths, 16, torch.Generator().manual_seed(seed))

    first = batches(0)
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert all(1 <= len(batch) <= 16 for batch in first)
    assert first == batches(0)
    assert first != batches(1)
    # grouping by length: far less padding than batches of a plain shuffle
    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    plain = [shuffled[i:i + 16] for i in range(0, 1000, 16)]

    def padding(groups):
        return sum(max(lengths[i] for i in g) * len(g) - sum(lengths[i] for i in g) for g in groups)

    assert padding(first) < padding(plain) / 5


@pytest.fixture(scope="module")
def xsid_tasks(data_ready):
    tasks = [load_task("xsid", language, data_ready) for language in ("en-US", "de-DE")]
    labels = sorted({label for task in tasks for label in task.labels})
    label_ids = {label: i for i, label in enumerate(["O"] + [x for x in labels if x != "O"])}
    lines = [e.text for task in tasks for e in task.splits["train"]]
    return tasks, label_ids, train_tokenizer(lines, 300)


@pytest.mark.parametrize("max_length", [64, 8])
def test_encode_labels_first_subword_of_each_word(xsid_tasks, max_length):
    tasks, label_ids, tokenizer = xsid_tasks
    split_words = 0
    for task in tasks:
        examples = task.splits["dev"][:60]
        data = encode(examples, tokenizer, kind=TAGGING, label_ids=label_ids, max_length=max_length)
        assert len(data) == len(examples)
        assert data.real_tokens == sum(len(ids) for ids in data.input_ids)
        words = tokenizer([list(e.words) for e in examples], is_split_into_words=True, truncation=True,
                          max_length=max_length)
        for index, example in enumerate(examples):
            word_ids = words.word_ids(index)
            labels = data.labels[index]
            assert len(labels) == len(data.input_ids[index]) == len(word_ids) <= max_length
            first = [p for p, w in enumerate(word_ids) if w is not None and (p == 0 or word_ids[p - 1] != w)]
            assert [p for p, label in enumerate(labels) if label != IGNORE] == first
            kept = [word_ids[p] for p in first]  # words inside the window, in order
            assert kept == list(range(len(kept)))
            assert [labels[p] for p in first] == [label_ids[example.tags[w]] for w in kept]
            assert data.gold[index] == [label_ids[t] for t in example.tags]  # all words, even cut ones
            split_words += len([w for w in word_ids if w is not None]) - len(first)
    assert split_words > 0, "no word was split into sub-words: the test would prove nothing"


def test_encode_and_collate_classification(xsid_tasks):
    _, _, tokenizer = xsid_tasks
    examples = [Example(("a", "short", "one"), label="x"), Example(tuple("a much longer sentence".split()) * 3,
                                                                    label="y")]
    data = encode(examples, tokenizer, kind=CLASSIFICATION, label_ids={"x": 0, "y": 1}, max_length=64)
    assert data.labels == data.gold == [0, 1]
    batch = collate(data, [0, 1], kind=CLASSIFICATION, pad_id=tokenizer.pad_token_id)
    assert batch["labels"].tolist() == [0, 1]
    assert batch["attention_mask"].sum().item() == data.real_tokens
    assert batch["input_ids"][0, len(data.input_ids[0]):].eq(tokenizer.pad_token_id).all()


# ----------------------------------------------------------------------------- the tiny encoder's cache

BUILD_ONE = """
import sys
from pathlib import Path
import nbforget.models.tiny as models
from nbforget.config import load_config

marker_dir, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
original = models._build_tiny

def counted(*args, **kwargs):
    (marker_dir / f"built-by-{__import__('os').getpid()}").write_text("")
    return original(*args, **kwargs)

models._build_tiny = counted
config = load_config(sys.argv[3], {"model": {"seed": 7}})
print(models.build_tiny(config.model, list(config.languages), data_dir, progress=False))
"""


@pytest.mark.slow
def test_runs_started_together_build_the_tiny_encoder_once(data_ready, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for item in (REPO_ROOT / "data").iterdir():  # the prepared data, without the model cache
        if item.name != "models":
            (data_dir / item.name).symlink_to(item)
    markers = tmp_path / "markers"
    markers.mkdir()
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen([sys.executable, "-c", BUILD_ONE, str(markers), str(data_dir), str(QUICK_PROFILE)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    folders = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(folders) == 1
    assert len(list(markers.iterdir())) == 1, "both processes pretrained the encoder"
    assert (Path(folders.pop()) / "pretraining.json").is_file()
