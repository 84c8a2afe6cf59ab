"""What a task is: what a step trains on, the objective and head, and how one cell is scored.

The engine runs any `Task`; the metrics only see the score matrix it produces. A task turns the
examples of one split into an `Encoded` split (`encode`), batches of it into model inputs
(`collate`; the model computes the objective from ``labels``), builds the base model with its
head (`new_model`), and scores a model on a split (`score`, a dict of metrics of which
``primary_metric`` fills the score matrix). ``higher_is_better`` says how the matrix reads: a
task whose primary metric falls as the model improves (bits per byte, say) states it here, and
the metrics module keeps its signs by reading the matrix as its negative.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from nbforget.encoding import Encoded


class Task:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    data_kind: ClassVar[str] = ""  # the `LanguageTask.kind` of the data it trains on
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    peft_task_type: ClassVar[str] = ""  # peft's TaskType name for LoRA adapters on this task's model
    # modules LoRA strategies train in full beside the adapters (the heads); empty: peft's default for
    # `peft_task_type` (``classifier`` and ``score``)
    peft_modules_to_save: ClassVar[tuple[str, ...]] = ()

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = tuple(labels)
        self.label_ids = {label: index for index, label in enumerate(self.labels)}

    @property
    def chance(self) -> float:
        """The primary metric of a model that knows nothing about the task."""
        raise NotImplementedError

    def encode(self, examples, tokenizer, *, max_length: int) -> Encoded:
        raise NotImplementedError

    def collate(self, data: Encoded, indices: list[int], *, pad_id: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def new_model(self, source: str, *, seed: int, freeze_embeddings: bool = False):
        raise NotImplementedError

    def predict(self, model, data: Encoded, *, batch_size: int, pad_id: int, device, bf16: bool) -> list:
        raise NotImplementedError

    def score_predictions(self, gold: list, predicted: list) -> dict[str, float]:
        raise NotImplementedError

    def score(self, model, data: Encoded, *, batch_size: int, pad_id: int, device, bf16: bool) -> dict[str, float]:
        predicted = self.predict(model, data, batch_size=batch_size, pad_id=pad_id, device=device, bf16=bf16)
        return self.score_predictions(data.gold, predicted)


def batched_logits(task: Task, model, data: Encoded, *, batch_size: int, pad_id: int, device, bf16: bool):
    """Yield ``(indices, labels, logits)`` over `data` in length-sorted batches (little padding)."""
    for indices, labels, outputs in batched_outputs(task, model, data, ("logits",), batch_size=batch_size,
                                                    pad_id=pad_id, device=device, bf16=bf16):
        yield indices, labels, outputs["logits"]


@torch.no_grad()
def batched_outputs(task: Task, model, data: Encoded, fields: tuple[str, ...], *, batch_size: int, pad_id: int,
                    device, bf16: bool):
    """Yield ``(indices, labels, {field: tensor})`` over `data` in length-sorted batches: the model
    outputs named in `fields` (``logits``, say), as float32 on the CPU. ``labels`` is the batch's
    ``labels``; every target (a batch key ending in ``labels``) is kept from the model."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        batch = task.collate(data, indices, pad_id=pad_id)
        labels = batch.pop("labels")
        inputs = {k: v.to(device) for k, v in batch.items() if not k.endswith("labels")}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(**inputs)
        yield indices, labels, {field: getattr(output, field).float().cpu() for field in fields}
