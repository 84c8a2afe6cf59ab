"""Tasks the engine runs, their registry, and the data of a config loaded and encoded once.

    TASKS                       task name -> `Task` class
    task_for_data(kind, labels) the task that trains on data of this `LanguageTask.kind`
    prepare(config) -> Prepared every language's splits (trained and held-out), tokenized once, the task
                                and base model

A new task is a `Task` subclass in its own module, registered in `TASKS`; the engine, the
strategies and the metrics need no change.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from nbforget import NbforgetError
from nbforget.config import RunConfig
from nbforget.data import load_task, require_nonempty
from nbforget.data.types import CLASSIFICATION, Example, LanguageTask
from nbforget.encoding import Encoded
from nbforget.models import base_model_dir, load_tokenizer
from nbforget.tasks.base import Task
from nbforget.tasks.classification import SentenceClassification
from nbforget.tasks.tagging import SlotFilling

__all__ = ["TASKS", "Prepared", "Task", "concat", "prepare", "task_for_data"]

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (SlotFilling, SentenceClassification)}


def task_for_data(kind: str, labels: tuple[str, ...]) -> Task:
    for cls in TASKS.values():
        if cls.data_kind == kind:
            return cls(labels)
    raise NbforgetError(f"no task trains on data of kind {kind!r}; tasks: {', '.join(TASKS)}")


@dataclass
class Prepared:
    """Tasks loaded and tokenized once for a config: shared by every strategy of a process."""

    tasks: dict[str, LanguageTask]
    task: Task
    base_source: str
    tokenizer: object
    encoded: dict[tuple[str, str], Encoded]

    @property
    def kind(self) -> str:
        return self.task.data_kind

    @property
    def labels(self) -> tuple[str, ...]:
        return self.task.labels

    @property
    def chance(self) -> float:
        return self.task.chance

    def step_data(self, languages, split: str) -> Encoded:
        """What a step trains on (``train``) or selects its epoch by (``dev``): the union of its languages."""
        return concat([self.encoded[(language, split)] for language in languages])


_PREPARED: dict[str, Prepared] = {}


def prepare(config: RunConfig, *, progress: bool = True) -> Prepared:
    key = hashlib.sha256(repr((config.dataset, config.languages, config.held_out_languages, config.model,
                               config.train.max_train_examples, config.train.max_eval_examples,
                               str(config.data_path))).encode()).hexdigest()
    if key in _PREPARED:
        return _PREPARED[key]
    tasks = {}
    for language in config.languages:
        data = load_task(config.dataset, language, config.data_path)
        require_nonempty(data, ("train", "test"))
        tasks[language] = _limit(data, config.train.max_train_examples, config.train.max_eval_examples)
    for index, language in enumerate(config.held_out_languages):
        tasks[language] = _limit(_held_out_task(config, index, language), config.train.max_train_examples,
                                 config.train.max_eval_examples)
    kind = {data.kind for data in tasks.values()}.pop()
    # Labels of every evaluated language: a label only a held-out language's test set has is one the
    # model never learns, and scoring counts it as missed, as zero-shot transfer must.
    task = task_for_data(kind, _union_labels(tasks.values(), kind))
    source = base_model_dir(config.model, config.evaluated_languages, config.data_path, dataset=config.dataset,
                            progress=progress)
    tokenizer = load_tokenizer(source)
    encoded = {}
    for language, data in tasks.items():
        for split, examples in data.splits.items():
            encoded[(language, split)] = task.encode(examples, tokenizer, max_length=config.model.max_length)
    prepared = Prepared(tasks, task, source, tokenizer, encoded)
    _PREPARED[key] = prepared
    return prepared


def _held_out_task(config: RunConfig, index: int, language: str) -> LanguageTask:
    """A held-out language's data (only its test split, and dev, are ever read), or an error that
    names it as held_out_languages[index] and says how to fix it."""
    where = getattr(config, "loaded_from", "the config")
    try:
        data = load_task(config.dataset, language, config.data_path)
        require_nonempty(data, ("test",))
    except NbforgetError as error:
        raise NbforgetError(
            f"held-out language {language!r} (held_out_languages[{index}], in {where}) cannot be scored: {error}; "
            f"a held-out language needs a test split in data set {config.dataset!r}: drop it from "
            "held_out_languages or prepare its data") from None
    splits = {split: ([] if split == "train" else examples) for split, examples in data.splits.items()}
    notes = {**data.notes, "empty train": "a held-out language is never trained"}
    return dataclasses.replace(data, splits=splits, notes=notes)  # its training examples are never encoded


def _limit(task: LanguageTask, train: int | None, evaluation: int | None) -> LanguageTask:
    """Keep evenly spaced examples of each split: deterministic, and a file sorted by label (SIB-200's
    test split is) still gives every label, where its first N examples would all share one."""
    if train is None and evaluation is None:
        return task

    def spaced(examples: list[Example], limit: int | None) -> list[Example]:
        if not limit or limit >= len(examples):
            return examples
        return [examples[i * len(examples) // limit] for i in range(limit)]

    splits = {split: spaced(examples, train if split == "train" else evaluation)
              for split, examples in task.splits.items()}
    return LanguageTask(task.dataset, task.language, task.kind, splits, task.labels, task.source_code,
                        task.intents, dict(task.notes))


def _union_labels(tasks, kind: str) -> tuple[str, ...]:
    labels = sorted({label for task in tasks for label in task.labels})
    if kind != CLASSIFICATION and "O" in labels:
        labels = ["O"] + [label for label in labels if label != "O"]  # "O" is id 0 (see SlotFilling.predict)
    return tuple(labels)


def concat(parts: list[Encoded]) -> Encoded:
    return Encoded(
        [ids for p in parts for ids in p.input_ids], [lab for p in parts for lab in p.labels],
        [g for p in parts for g in p.gold], sum(p.real_tokens for p in parts),
    )
