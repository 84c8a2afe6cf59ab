"""Batched evaluation: predictions for a split, the cell scores, and a whole row of the matrix."""
from __future__ import annotations

import torch

from nbforget import scoring
from nbforget.data.types import TAGGING
from nbforget.train import IGNORE, Encoded, collate

PRIMARY_METRIC = {TAGGING: "slot_f1", "classification": "accuracy"}


@torch.no_grad()
def predict(model, data: Encoded, *, kind: str, batch_size: int, pad_id: int, device, bf16: bool) -> list:
    """Class ids per sentence (classification) or per word (tagging, first sub-word's prediction;
    words cut off by truncation are predicted as label 0, which is ``O``)."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))  # little padding
    predictions: list = [None] * len(data)
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = collate(data, indices, kind=kind, pad_id=pad_id)
        labels = batch.pop("labels")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        best = logits.float().argmax(-1).cpu()
        for row, i in enumerate(indices):
            if kind == TAGGING:
                words = best[row][labels[row] != IGNORE].tolist()
                predictions[i] = words + [0] * (len(data.gold[i]) - len(words))
            else:
                predictions[i] = int(best[row])
    return predictions


def score_predictions(gold_ids: list, predicted: list, *, kind: str, labels: tuple[str, ...]) -> dict:
    """Cell scores: slot F1 (MASSIVE convention) for tagging; accuracy and macro F1 otherwise."""
    if kind == TAGGING:
        true = [[labels[t] for t in row] for row in gold_ids]
        pred = [[labels[t] for t in row] for row in predicted]
        return {"slot_f1": scoring.slot_f1(true, pred)}
    true = [labels[t] for t in gold_ids]
    pred = [labels[t] for t in predicted]
    return {"accuracy": scoring.accuracy(true, pred), "macro_f1": scoring.macro_f1(true, pred)}


def score_split(model, data: Encoded, *, kind: str, labels, batch_size: int, pad_id: int, device, bf16: bool) -> dict:
    predicted = predict(model, data, kind=kind, batch_size=batch_size, pad_id=pad_id, device=device, bf16=bf16)
    return score_predictions(data.gold, predicted, kind=kind, labels=labels)
