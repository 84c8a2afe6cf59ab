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

from nbforget import NbforgetError
from nbforget.config import RunConfig
from nbforget.languages import get_language
from nbforget.tasks.base import Task


@dataclass
class RunContext:
    """What a strategy may use: the resolved config, the task and a way to build models."""

    config: RunConfig
    task: Task
    base_source: str
    seed: int
    device: torch.device
    order: tuple[str, ...] = ()
    families: dict[str, str] = field(default_factory=dict)  # language -> family (held-out languages too)
    held_out: tuple[str, ...] = ()  # scored after every step with `model_for`, never trained

    def new_model(self):
        """The base encoder with a fresh head (initialised from the run's seed)."""
        model = self.task.new_model(self.base_source, seed=self.seed,
                                    freeze_embeddings=self.config.model.freeze_embeddings)
        return model.to(self.device)


@dataclass(frozen=True)
class Step:
    index: int
    languages: tuple[str, ...]  # trained at this step (one language, or all for joint training)

    @property
    def label(self) -> str:
        return self.languages[0] if len(self.languages) == 1 else "+".join(self.languages)


class Strategy:
    """Defaults: sequential full fine-tuning of one model (VANILLA).

    Facts about a strategy live on its class, and analysis, batch planning and pages read them
    from the registry:

    - ``paper_name``: the core paper's name for it (``None`` when the paper did not run it);
    - ``separate_parameters``: ``None`` when one set of parameters is trained again and again,
      ``"language"`` or ``"family"`` when each gets its own copy (`parameter_copies` counts them);
    - ``joint_reference`` / ``sequential_baseline``: MULTI, the level joint training reaches, and
      VANILLA, the forgetting every other strategy is compared with (strategy pages draw both,
      so their runs go first);
    - ``uses_lora``, ``keeps_checkpoint``; ``page_section``: which extra section its page shows;
    - ``settings``: the sections of ``config.strategy`` it reads, so that `run_identity` (what
      names its run folder) holds every setting that can change its result and no other
      (`reads` says the same of one dotted key);
    - `groups`: the groups of `STRATEGY_GROUPS` it belongs to (``lora`` or ``full``), whose
      ``by_strategy`` entries apply to it before its own;
    - ``held_out_scoring``: which model scores a held-out language (``config.held_out_languages``,
      never trained) after each step, in words for its page. `model_for` is asked for it as for
      any language not trained yet.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper_name: ClassVar[str | None] = None
    separate_parameters: ClassVar[str | None] = None
    joint_reference: ClassVar[bool] = False
    sequential_baseline: ClassVar[bool] = False
    uses_lora: ClassVar[bool] = False
    keeps_checkpoint: ClassVar[bool] = True  # False: the model after a step is not needed later
    page_section: ClassVar[str | None] = None  # see `nbforget.pages.strategy_section`
    settings: ClassVar[tuple[str, ...]] = ()  # the sections of ``config.strategy`` it reads
    # How `model_for` scores a held-out language (never trained), for its page: the model of the
    # step, for a strategy that has one model; strategies with models of their own say which.
    held_out_scoring: ClassVar[str] = "with the model after each step, the same model that scores every language"

    @classmethod
    def display_name(cls) -> str:
        """The paper's name where it has one (VANILLA), else the short name of the title."""
        return cls.paper_name or cls.title.split(":")[0].strip() or cls.name

    @classmethod
    def groups(cls) -> tuple[str, ...]:
        """The `STRATEGY_GROUPS` it belongs to: ``lora`` when it trains LoRA adapters, else ``full``."""
        return ("lora",) if cls.uses_lora else ("full",)

    @classmethod
    def resolve(cls, config: RunConfig) -> RunConfig:
        """`config` with this strategy's ``by_strategy`` settings applied (its groups', then its own)."""
        return config.for_strategy(cls.name, cls.groups())

    @classmethod
    def reads(cls, key: str) -> bool:
        """Whether the dotted setting `key` can change this strategy's runs, i.e. is part of its
        `run_identity`: a ``strategy`` section it lists in ``settings``, the learning rate it
        trains with, and every other result setting."""
        top, _, rest = key.partition(".")
        if top in RunConfig.NOT_RESULT_FIELDS or top in RunConfig.EXECUTION_FIELDS:
            return False
        if top == "strategy":
            return not rest or rest.split(".")[0] in cls.settings
        if key == "train.learning_rate":
            return not cls.uses_lora
        if key == "train.lora_learning_rate":
            return cls.uses_lora
        return True

    @classmethod
    def run_identity(cls, config: RunConfig, order, seed: int) -> dict:
        """Everything that can change this strategy's result on `order` and `seed`: the config's
        result settings (its ``by_strategy`` settings applied), with only the ``strategy`` sections
        it reads and only the learning rate it trains with. Two requests with the same identity are
        the same run."""
        settings = cls.resolve(config).result_settings()
        settings["strategy"] = {name: value for name, value in settings["strategy"].items() if name in cls.settings}
        settings["train"].pop("learning_rate" if cls.uses_lora else "lora_learning_rate")
        return {"strategy": cls.name, "order": list(order), "seed": seed, "settings": settings}

    @classmethod
    def parameter_copies(cls, config: dict, order) -> int:
        """How many separate copies of its trainable parameters a run over `order` trains (the
        paper's Table 1 counts MONO as 52 x 278M, VANILLA as 278M). `config` is the run's
        recorded config."""
        if cls.separate_parameters == "family":
            return len({get_language(language).family for language in order})
        return len(order) if cls.separate_parameters == "language" else 1

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.trained: list[str] = []

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

    def after_language(self, model, step: Step, train_data=None):
        """After training `step`; `train_data` is the step's encoded training data."""
        self.trained.extend(step.languages)
        return model

    def model_for(self, model, language: str, step: Step):
        return model

    def finish(self, model):
        return model

    def drift_model(self, model):
        """The model whose encoder weights are compared with the base (for drift records)."""
        return model

    def step_record(self, model, step: Step) -> dict:
        """What the strategy did at `step`, recorded in the run (its page shows it): e.g. the frozen
        layers, the Fisher mass per layer, the experts. JSON values only."""
        return {}

    # resume
    def checkpoint(self, model) -> dict[str, torch.Tensor] | None:
        """What a later process needs to resume after this step: the model's weights and the
        strategy's own state (None when the model after a step is not needed later)."""
        if not self.keeps_checkpoint:
            return None
        return dict(model.state_dict()) | {f"strategy::{k}": v for k, v in self.state().items()}

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def prepare_resume(self, model, trained: list[str]):
        self.trained = list(trained)
        return model

    def restore(self, model, trained: list[str], checkpoint: dict | None, *, where) -> object:
        """The model and the strategy's state after the steps that trained `trained`, from the
        run's `checkpoint` (None for strategies that keep none)."""
        model = self.prepare_resume(model, trained)
        if checkpoint is None:
            return model
        own = {k: v for k, v in checkpoint.items() if not k.startswith("strategy::")}
        _, unexpected = model.load_state_dict(own, strict=False)
        if unexpected:
            raise NbforgetError(f"checkpoint of {where} does not fit the model: {unexpected[:3]}")
        self.load_state({k.removeprefix("strategy::"): v for k, v in checkpoint.items() if k.startswith("strategy::")})
        return model


REGISTRY: dict[str, type[Strategy]] = {}

# Names a ``by_strategy`` entry may give besides a strategy's: what `Strategy.groups` returns.
STRATEGY_GROUPS = {
    "lora": "the strategies that train LoRA adapters on a frozen model (uses_lora)",
    "full": "the strategies that fine-tune the model's own weights (full fine-tuning)",
}


def register(cls: type[Strategy]) -> type[Strategy]:
    if not cls.name or cls.name in REGISTRY or cls.name in STRATEGY_GROUPS:
        raise ValueError(f"strategy name {cls.name!r} empty, registered twice or the name of a group")
    REGISTRY[cls.name] = cls
    return cls
