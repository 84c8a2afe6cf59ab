"""Slot filling as token tagging: BIO labels on each word's first sub-word, slot F1 in MASSIVE's
convention (the core paper's task)."""
from __future__ import annotations

from nbforget import scoring
from nbforget.data.types import TAGGING
from nbforget.encoding import IGNORE, Encoded, collate, encode
from nbforget.models.hub import load_task_model
from nbforget.tasks.base import Task, batched_logits


class SlotFilling(Task):
    name = "slot_filling"
    description = "token tagging of slots (BIO), scored by slot F1 (MASSIVE's convention)"
    data_kind = TAGGING
    primary_metric = "slot_f1"
    peft_task_type = "TOKEN_CLS"

    @property
    def chance(self) -> float:
        return 0.0  # slot F1 of a model that predicts no slot

    def encode(self, examples, tokenizer, *, max_length: int) -> Encoded:
        return encode(examples, tokenizer, kind=TAGGING, label_ids=self.label_ids, max_length=max_length)

    def collate(self, data, indices, *, pad_id):
        return collate(data, indices, kind=TAGGING, pad_id=pad_id)

    def new_model(self, source, *, seed, freeze_embeddings=False):
        return load_task_model(source, TAGGING, len(self.labels), seed=seed, freeze_embeddings=freeze_embeddings)

    def predict(self, model, data, *, batch_size, pad_id, device, bf16):
        """Label ids per word: the first sub-word's prediction; words cut off by truncation are
        predicted as label 0, which is ``O``."""
        predictions: list = [None] * len(data)
        for indices, labels, logits in batched_logits(self, model, data, batch_size=batch_size, pad_id=pad_id,
                                                      device=device, bf16=bf16):
            best = logits.argmax(-1)
            for row, i in enumerate(indices):
                words = best[row][labels[row] != IGNORE].tolist()
                predictions[i] = words + [0] * (len(data.gold[i]) - len(words))
        return predictions

    def score_predictions(self, gold, predicted):
        true = [[self.labels[t] for t in row] for row in gold]
        pred = [[self.labels[t] for t in row] for row in predicted]
        return {"slot_f1": scoring.slot_f1(true, pred)}
