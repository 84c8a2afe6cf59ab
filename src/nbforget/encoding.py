"""Tokenized splits and batches: each split of each language is encoded once, then batched with
dynamic padding, grouped by length for training and sorted by length for evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nbforget.data.types import TAGGING, Example

IGNORE = -100  # label of sub-words after the first, special tokens and padding


@dataclass
class Encoded:
    """One split of one language, tokenized once: ids, labels, and word alignment for tagging."""

    input_ids: list[list[int]]
    labels: list  # classification: one class id per sentence; tagging: per-token ids with IGNORE
    gold: list  # word-level label ids per sentence (tagging, all words) or the class id
    real_tokens: int  # non-padding tokens, for throughput figures

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(examples: list[Example], tokenizer, *, kind: str, label_ids: dict[str, int], max_length: int) -> Encoded:
    """Tokenize a split; for tagging, each word's label sits on its first sub-word only (MASSIVE)."""
    if not examples:
        return Encoded([], [], [], 0)
    words = [list(example.words) for example in examples]
    batch = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    labels: list = []
    for index, example in enumerate(examples):
        if kind == TAGGING:
            tags = example.tags
            seen: set[int] = set()
            row = []
            for word_id in batch.word_ids(index):
                if word_id is None or word_id in seen:
                    row.append(IGNORE)
                else:
                    seen.add(word_id)
                    row.append(label_ids[tags[word_id]])
            labels.append(row)
        else:
            labels.append(label_ids[example.label])
    ids = batch["input_ids"]
    if kind == TAGGING:
        gold = [[label_ids[t] for t in example.tags] for example in examples]
    else:
        gold = list(labels)
    return Encoded(ids, labels, gold, sum(len(i) for i in ids))


def length_grouped_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffle, sort by length inside chunks of 50 batches, then shuffle the batches: little padding,
    still random order (the grouping of Hugging Face's LengthGroupedSampler)."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: -lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def collate(data: Encoded, indices: list[int], *, kind: str, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(data.input_ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        input_ids[row, : len(data.input_ids[i])] = torch.tensor(data.input_ids[i])
        attention[row, : len(data.input_ids[i])] = 1
    if kind == TAGGING:
        labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
        for row, i in enumerate(indices):
            labels[row, : len(data.labels[i])] = torch.tensor(data.labels[i])
    else:
        labels = torch.tensor([data.labels[i] for i in indices])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
