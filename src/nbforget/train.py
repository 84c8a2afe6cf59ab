"""The one training loop: AdamW, warm-up then linear decay, early stopping on the dev score,
length-grouped batches with dynamic padding, bf16 autocast where it is faster, seeded."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from nbforget.data.types import TAGGING, Example
from nbforget.models import fused_if_supported

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


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train_language(
    model,
    train: Encoded,
    dev: Encoded,
    *,
    kind: str,
    dev_score: Callable[[object, Encoded], float],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    patience: int,
    bf16: bool,
    seed: int,
    pad_id: int,
    device: torch.device,
    extra_loss: Callable[[object], torch.Tensor | None] | None = None,
    progress: bool = True,
    description: str = "training",
) -> dict:
    """Fine-tune `model` on one language; restore the epoch with the best dev score.

    `extra_loss(model)` is the strategies' hook for penalties (L2-SP, EWC); it returns a scalar or
    None. Returns a history dict (per-epoch dev score, best epoch, steps, real tokens, seconds).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    parameters = [p for p in model.parameters() if p.requires_grad]
    torch.set_flush_denormal(True)  # denormal optimizer state slows CPU element-wise ops badly
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay, **fused_if_supported(device))
    steps_per_epoch = -(-len(train) // batch_size)
    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, int(total * warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    lengths = [len(ids) for ids in train.input_ids]
    best_score, best_epoch, best_state, waited = float("-inf"), -1, None, 0
    history: dict = {"dev": [], "loss": [], "steps": 0, "tokens": 0}
    started = time.perf_counter()
    bar = tqdm(total=total, desc=description, disable=not progress, leave=False)
    for epoch in range(epochs):
        model.train()
        epoch_loss, batches = 0.0, 0
        for indices in length_grouped_batches(lengths, batch_size, generator):
            batch = {k: v.to(device) for k, v in collate(train, indices, kind=kind, pad_id=pad_id).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            penalty = extra_loss(model) if extra_loss else None
            if penalty is not None:
                loss = loss + penalty
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += loss.item()
            batches += 1
            history["steps"] += 1
            history["tokens"] += int(batch["attention_mask"].sum())
            bar.update(1)
        score = dev_score(model, dev) if len(dev) else -epoch_loss  # no dev split: lowest loss wins
        history["dev"].append(round(score, 6))
        history["loss"].append(round(epoch_loss / max(1, batches), 6))
        bar.set_postfix(epoch=epoch + 1, dev=f"{score:.3f}")
        if score > best_score:
            best_score, best_epoch, best_state, waited = score, epoch, trainable_state(model), 0
        else:
            waited += 1
            if waited >= patience:
                break
    bar.close()
    if best_state is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in best_state:
                    parameter.copy_(best_state[name])
    history.update(best_epoch=best_epoch, best_dev=best_score, seconds=round(time.perf_counter() - started, 3))
    return history
