"""Sentence classification (SIB-200 topics): a head on the sentence representation, accuracy."""
from __future__ import annotations

from nbforget import scoring
from nbforget.data.types import CLASSIFICATION
from nbforget.encoding import Encoded, collate, encode
from nbforget.models.hub import load_task_model
from nbforget.tasks.base import Task, batched_logits


class SentenceClassification(Task):
    name = "sentence_classification"
    description = "one label per sentence, scored by accuracy (and macro F1)"
    data_kind = CLASSIFICATION
    primary_metric = "accuracy"
    peft_task_type = "SEQ_CLS"

    @property
    def chance(self) -> float:
        return 1.0 / len(self.labels)  # a uniform guess

    def encode(self, examples, tokenizer, *, max_length: int) -> Encoded:
        return encode(examples, tokenizer, kind=CLASSIFICATION, label_ids=self.label_ids, max_length=max_length)

    def collate(self, data, indices, *, pad_id):
        return collate(data, indices, kind=CLASSIFICATION, pad_id=pad_id)

    def new_model(self, source, *, seed, freeze_embeddings=False):
        return load_task_model(source, CLASSIFICATION, len(self.labels), seed=seed,
                               freeze_embeddings=freeze_embeddings)

    def predict(self, model, data, *, batch_size, pad_id, device, bf16):
        predictions: list = [None] * len(data)
        for indices, _, logits in batched_logits(self, model, data, batch_size=batch_size, pad_id=pad_id,
                                                 device=device, bf16=bf16):
            best = logits.argmax(-1)
            for row, i in enumerate(indices):
                predictions[i] = int(best[row])
        return predictions

    def score_predictions(self, gold, predicted):
        true = [self.labels[t] for t in gold]
        pred = [self.labels[t] for t in predicted]
        return {"accuracy": scoring.accuracy(true, pred), "macro_f1": scoring.macro_f1(true, pred)}
