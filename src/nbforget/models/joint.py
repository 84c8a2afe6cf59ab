"""Joint intent classification and slot filling: one encoder, two heads (MASSIVE's baseline setup).

`IntentSlotModel` wraps a token-classification model (the encoder and its slot head, exactly as
slot filling alone loads it) and adds ``intent_classifier``, a linear head on the final hidden
state of the first token (``<s>`` / ``[CLS]``), after dropout. MASSIVE's baseline
(alexa/massive, ``src/massive/models/xlmr_ic_sf.py``) pools the first token for the intent as
well; its default heads add one hidden layer, these are linear. The loss is the sum of the two
cross-entropies: slots over the labelled sub-words (the first of each word) and intent over the
sentences, as in MASSIVE (whose slot coefficient is a setting, 1 here).

The parameters keep the names of the tagger's under ``tagger.`` (``tagger.roberta.encoder.layer.0
...``), so layer groups, LoRA targets and drift read them as they read the slot model's; both
heads sit outside the encoder's layers (the ``head`` group).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

INTENT_HEAD = "intent_classifier"
SLOT_HEAD = "classifier"  # the slot head of Hugging Face's token-classification models


@dataclass
class IntentSlotOutput(ModelOutput):
    """``loss`` (slot + intent cross-entropy, when labels are given), slot ``logits`` per token
    (batch x tokens x slot labels) and ``intent_logits`` per sentence (batch x intents)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    intent_logits: torch.Tensor | None = None


class IntentSlotModel(torch.nn.Module):
    """A token-classification model plus an intent head on its first token (see the module doc)."""

    def __init__(self, tagger, num_intents: int) -> None:
        super().__init__()
        if num_intents < 2:
            raise ValueError(f"an intent head needs at least 2 intents, got {num_intents}")
        self.tagger = tagger
        self.config = tagger.config
        config = tagger.config
        dropout = getattr(config, "classifier_dropout", None)
        self.intent_dropout = torch.nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.intent_classifier = torch.nn.Linear(config.hidden_size, num_intents)
        # initialised as Hugging Face initialises its classification heads
        torch.nn.init.normal_(self.intent_classifier.weight, std=getattr(config, "initializer_range", 0.02))
        torch.nn.init.zeros_(self.intent_classifier.bias)

    @property
    def base_model(self):
        return self.tagger.base_model

    def forward(self, input_ids=None, attention_mask=None, labels=None, intent_labels=None, inputs_embeds=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs) -> IntentSlotOutput:
        out = self.tagger(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                          labels=labels, output_hidden_states=True, return_dict=True, **kwargs)
        first = out.hidden_states[-1][:, 0]
        intent_logits = self.intent_classifier(self.intent_dropout(first))
        loss = None
        if labels is not None or intent_labels is not None:
            parts = [out.loss] if labels is not None else []
            if intent_labels is not None:
                parts.append(torch.nn.functional.cross_entropy(intent_logits.float(), intent_labels))
            loss = torch.stack([part.float() for part in parts]).sum()
        return IntentSlotOutput(loss=loss, logits=out.logits, intent_logits=intent_logits)
