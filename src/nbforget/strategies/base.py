"""What a strategy is: a few hooks the engine calls. The loop never asks which strategy it runs.

Life of a run (see `nbforget.engine`): ``model = initial_model()``; then for each step of
``steps(order)``: ``model = before_language(model, step, languages)``, training with
``extra_loss(model)`` added to the task loss, ``model = after_language(model, step, languages)``,
then every language is scored with ``model_for(model, language, step)`` (``None`` means: reuse the
score this language got with its own expert, which cannot change any more). ``finish(model)`` runs
after the last step (merging strategies merge there). ``state()``/``load_state()`` carry whatever a
strategy must keep across a resume besides the model's own weights (EWC's Fisher, say), and
``prepare_resume(model, trained)`` rebuilds structure (adapters) before a checkpoint is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from nbforget.config import RunConfig


@dataclass
class RunContext:
    """What a strategy may use: the resolved config, the task and a way to build models."""

    config: RunConfig
    kind: str
    labels: tuple[str, ...]
    base_source: str
    seed: int
    device: torch.device
    order: tuple[str, ...] = ()
    families: dict[str, str] = field(default_factory=dict)  # language -> family

    def new_model(self):
        """The base encoder with a fresh head (initialised from the run's seed)."""
        from nbforget.models import load_task_model

        model = load_task_model(
            self.base_source, self.kind, len(self.labels), seed=self.seed,
            freeze_embeddings=self.config.model.freeze_embeddings,
        )
        return model.to(self.device)


@dataclass(frozen=True)
class Step:
    index: int
    languages: tuple[str, ...]  # trained at this step (one language, or all for joint training)

    @property
    def label(self) -> str:
        return self.languages[0] if len(self.languages) == 1 else "+".join(self.languages)


class Strategy:
    """Defaults: sequential full fine-tuning of one model (VANILLA)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_lora: ClassVar[bool] = False
    keeps_checkpoint: ClassVar[bool] = True  # False: the model after a step is not needed later

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.trained: list[str] = []
        self.trainable_counts: dict[str, int] = {}

    # structure of the run
    def steps(self, order: tuple[str, ...]) -> list[Step]:
        return [Step(i, (language,)) for i, language in enumerate(order)]

    @property
    def learning_rate(self) -> float:
        train = self.context.config.train
        return train.lora_learning_rate if self.uses_lora else train.learning_rate

    # hooks
    def initial_model(self):
        return self.context.new_model()

    def before_language(self, model, step: Step):
        return model

    def extra_loss(self, model) -> torch.Tensor | None:
        return None

    def after_language(self, model, step: Step):
        self.trained.extend(step.languages)
        return model

    def model_for(self, model, language: str, step: Step):
        return model

    def finish(self, model):
        return model

    def drift_model(self, model):
        """The model whose encoder weights are compared with the base (for drift records)."""
        return model

    # resume
    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def prepare_resume(self, model, trained: list[str]):
        self.trained = list(trained)
        return model


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"strategy name {cls.name!r} empty or registered twice")
    REGISTRY[cls.name] = cls
    return cls
