"""The one data type every loader returns: a task in one language with its splits."""
from __future__ import annotations

from dataclasses import dataclass, field

TAGGING = "tagging"  # one BIO label per word (slot filling)
CLASSIFICATION = "classification"  # one label per sentence (topics, intents)
TASK_KINDS = (TAGGING, CLASSIFICATION)
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Example:
    """One sentence: its words, and the word-level BIO tags and/or the sentence label."""

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None  # BIO slot tags, one per word (tagging tasks)
    label: str | None = None  # sentence label: topic or intent (classification tasks)

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class LanguageTask:
    """A task in one language.

    `language` is the project's language key (a MASSIVE-style locale such as ``th-TH``, see
    `nbforget.languages`); `source_code` is the code the data set itself uses (``tha_Thai``, ``de``).
    `labels` is the label vocabulary of the task kind: BIO tags (with ``O`` first) for tagging,
    class names for classification. `intents` is filled when a tagging data set also carries
    intents (MASSIVE, xSID); it is ``None`` otherwise.
    """

    dataset: str
    language: str
    kind: str
    splits: dict[str, list[Example]]
    labels: tuple[str, ...]
    source_code: str = ""
    intents: tuple[str, ...] | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind {self.kind!r} for {self.dataset}/{self.language}; expected one of {TASK_KINDS}")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"{self.dataset}/{self.language} lacks split(s) {missing}")

    def counts(self) -> dict[str, int]:
        return {split: len(self.splits[split]) for split in SPLITS}

    @property
    def chance(self) -> float:
        """Chance level of the task's main score: 1/|classes| for classification (uniform guess);
        0 for slot F1 (a guess of all ``O`` scores 0)."""
        return 1.0 / len(self.labels) if self.kind == CLASSIFICATION else 0.0
