"""Joint intent classification and slot filling (MASSIVE's baseline setup).

One encoder with two heads (`nbforget.models.joint.IntentSlotModel`): the intent from the first
token's representation, BIO slot tags from each word's first sub-word, the two cross-entropy
losses summed. Every cell records three metrics:

- ``slot_f1``: span-level micro F1, MASSIVE's convention (`nbforget.scoring.slot_f1`); the
  primary metric, so the score matrix and every matrix metric read slot F1, as with slot filling
  alone;
- ``intent_accuracy``: the share of sentences whose intent is right;
- ``exact_match``: the share of sentences whose intent and every word's slot tag are right
  (`nbforget.scoring.exact_match`: the BIO tag sequences must be equal word for word, so a span
  that seqeval accepts from a stray ``I-`` tag is still no exact match).

An encoded split keeps both targets per sentence: ``labels[i]`` is ``(intent id, token label ids)``
and ``gold[i]`` is ``(intent id, word label ids)``; a prediction has the same form as ``gold[i]``.
"""
from __future__ import annotations

import torch

from nbforget import scoring
from nbforget.data.types import TAGGING
from nbforget.encoding import IGNORE, Encoded, collate, encode
from nbforget.models.hub import load_intent_slot_model
from nbforget.models.joint import INTENT_HEAD, SLOT_HEAD
from nbforget.tasks.base import Task, batched_outputs


class IntentSlotFilling(Task):
    name = "intent_slots"
    description = ("intent classification and slot filling with one encoder (MASSIVE's baseline), scored by slot F1, "
                   "intent accuracy and exact match")
    data_kind = TAGGING
    primary_metric = "slot_f1"
    peft_task_type = "TOKEN_CLS"
    peft_modules_to_save = (SLOT_HEAD, INTENT_HEAD)  # LoRA strategies train both heads

    def __init__(self, labels: tuple[str, ...], intents: tuple[str, ...]) -> None:
        super().__init__(labels)
        self.intents = tuple(intents)
        self.intent_ids = {intent: index for index, intent in enumerate(self.intents)}

    @property
    def chance(self) -> float:
        return 0.0  # slot F1 of a model that predicts no slot

    def encode(self, examples, tokenizer, *, max_length: int) -> Encoded:
        tagged = encode(examples, tokenizer, kind=TAGGING, label_ids=self.label_ids, max_length=max_length)
        intents = []
        for example in examples:
            if example.label not in self.intent_ids:
                raise ValueError(f"sentence {example.text!r} has intent {example.label!r}, which is not among the "
                                 f"task's {len(self.intents)} intents")
            intents.append(self.intent_ids[example.label])
        return Encoded(tagged.input_ids, list(zip(intents, tagged.labels)), list(zip(intents, tagged.gold)),
                       tagged.real_tokens)

    def collate(self, data, indices, *, pad_id):
        tokens = Encoded([data.input_ids[i] for i in indices], [data.labels[i][1] for i in indices], [], 0)
        batch = collate(tokens, list(range(len(indices))), kind=TAGGING, pad_id=pad_id)
        batch["intent_labels"] = torch.tensor([data.labels[i][0] for i in indices])
        return batch

    def new_model(self, source, *, seed, freeze_embeddings=False):
        return load_intent_slot_model(source, len(self.labels), len(self.intents), seed=seed,
                                      freeze_embeddings=freeze_embeddings)

    def predict(self, model, data, *, batch_size, pad_id, device, bf16):
        """``(intent id, label ids per word)`` per sentence: each word's label is its first
        sub-word's prediction; words cut off by truncation are predicted as label 0, ``O``."""
        predictions: list = [None] * len(data)
        for indices, labels, outputs in batched_outputs(self, model, data, ("intent_logits", "logits"),
                                                        batch_size=batch_size, pad_id=pad_id, device=device,
                                                        bf16=bf16):
            intents, tags = outputs["intent_logits"].argmax(-1), outputs["logits"].argmax(-1)
            for row, i in enumerate(indices):
                words = tags[row][labels[row] != IGNORE].tolist()
                predictions[i] = (int(intents[row]), words + [0] * (len(data.gold[i][1]) - len(words)))
        return predictions

    def score_predictions(self, gold, predicted):
        true_intents = [self.intents[intent] for intent, _ in gold]
        pred_intents = [self.intents[intent] for intent, _ in predicted]
        true_tags = [[self.labels[t] for t in tags] for _, tags in gold]
        pred_tags = [[self.labels[t] for t in tags] for _, tags in predicted]
        return {"slot_f1": scoring.slot_f1(true_tags, pred_tags, scheme="bio"),
                "intent_accuracy": scoring.intent_accuracy(true_intents, pred_intents),
                "exact_match": scoring.exact_match(true_intents, pred_intents, true_tags, pred_tags, scheme="bio")}
