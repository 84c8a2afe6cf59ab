"""Tasks the engine runs, their registry, and the data of a config loaded and encoded once.

    TASKS                       task name -> `Task` class
    task_for_data(kind, labels) the task that trains on data of this `LanguageTask.kind` by itself
    task_for(choice, tasks)     the task of the config's ``task`` (`nbforget.config.TaskChoice`) on this data
    prepare(config) -> Prepared every language's splits (trained and held-out), tokenized once, the task
                                and base model

The config's ``task`` chooses: ``slots`` (the default, the core paper's setup) trains the data set's
own task, `task_for_data`: slot filling on MASSIVE and xSID, topic classification on SIB-200;
``intent_slots`` trains `IntentSlotFilling`, intent and slots jointly, on data whose every sentence
carries an intent (xSID; MASSIVE where its rows have intents).

A new task is a `Task` subclass in its own module, registered in `TASKS`; the engine, the
strategies and the metrics need no change.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from nbforget import NbforgetError
from nbforget.config import RunConfig
from nbforget.data import TITLES, load_task, require_nonempty
from nbforget.data.types import CLASSIFICATION, SPLITS, TAGGING, Example, LanguageTask
from nbforget.encoding import Encoded
from nbforget.models import base_model_dir, load_tokenizer
from nbforget.tasks.base import Task
from nbforget.tasks.classification import SentenceClassification
from nbforget.tasks.joint import IntentSlotFilling
from nbforget.tasks.tagging import SlotFilling

__all__ = ["TASKS", "IntentSlotFilling", "Prepared", "Task", "concat", "prepare", "task_for", "task_for_data"]

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (SlotFilling, SentenceClassification, IntentSlotFilling)}


def task_for_data(kind: str, labels: tuple[str, ...]) -> Task:
    """The task data of this kind trains on by itself (the config's ``task: slots``)."""
    for cls in (SlotFilling, SentenceClassification):
        if cls.data_kind == kind:
            return cls(labels)
    raise NbforgetError(f"no task trains on data of kind {kind!r}; tasks: {', '.join(TASKS)}")


def task_for(choice: str, tasks: dict[str, LanguageTask], *, where: str = "the config") -> Task:
    """The task of the config's ``task`` setting on the loaded `tasks` (language -> data)."""
    kind = {data.kind for data in tasks.values()}.pop()
    labels = _union_labels(tasks.values(), kind)
    if choice == "slots":
        return task_for_data(kind, labels)
    if choice != IntentSlotFilling.name:
        raise NbforgetError(f"task is {choice!r} (in {where}); expected slots or {IntentSlotFilling.name}")
    return IntentSlotFilling(labels, _intents(tasks, kind, where))


def _intents(tasks: dict[str, LanguageTask], kind: str, where: str) -> tuple[str, ...]:
    """The intents of every sentence of every split, sorted; an error naming the data where one lacks it."""
    fix = "use a data set with intents (--set dataset=xsid, or massive with intents in its rows), or --set task=slots"
    dataset = next(iter(tasks.values())).dataset
    if kind != TAGGING:
        raise NbforgetError(
            f"task intent_slots (in {where}) trains intents and slots together, and {dataset} "
            f"({TITLES.get(dataset, dataset)}) has one {kind} label per sentence, no slots or intents; {fix}")
    for language, data in tasks.items():
        missing = {split: sum(example.label is None for example in data.splits[split]) for split in SPLITS}
        if any(missing.values()):
            counts = ", ".join(f"{count} of {len(data.splits[split])} {split}" for split, count in missing.items()
                               if count)
            file = f" (in {data.notes['file']})" if "file" in data.notes else ""
            raise NbforgetError(
                f"task intent_slots (in {where}) needs an intent on every sentence, and {data.dataset}/{language} "
                f"has sentences without one: {counts}{file}; choose languages whose rows carry an 'intent', or "
                f"{fix}")
    return tuple(sorted({example.label for data in tasks.values() for split in data.splits.values()
                         for example in split}))


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
    key = hashlib.sha256(repr((config.dataset, config.task, config.languages, config.held_out_languages,
                               config.model, config.train.max_train_examples, config.train.max_eval_examples,
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
    # Labels of every evaluated language: a label only a held-out language's test set has is one the
    # model never learns, and scoring counts it as missed, as zero-shot transfer must.
    task = task_for(config.task, tasks, where=getattr(config, "loaded_from", "the config"))
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
