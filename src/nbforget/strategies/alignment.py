"""Layer-aware parameter alignment of one sequentially fine-tuned model (study 2): hard layer
freezing, soft regularization toward earlier weights (L2-SP, EWC) and post-hoc weight reversion.

Every strategy here trains one model on one language after another, as VANILLA does, and differs
from it by one hook. Layers are named as in the drift records (`nbforget.layers.layer_group`):
``embeddings`` and ``layer.0`` .. ``layer.{L-1}``; everything else (the task head, a pooler where
the model has one) is the ``head``.

Merging and family experts are in `nbforget.strategies.merging`.
"""
from __future__ import annotations

import torch

from nbforget import NbforgetError
from nbforget.config import FreezeSettings
from nbforget.encoding import length_grouped_batches
from nbforget.layers import HEAD, check_groups, copy_weights, cpu_copy, encoder_groups, parameter_group
from nbforget.train import language_seed
from nbforget.strategies.base import Step, Strategy, register


class SequentialStrategy(Strategy):
    """VANILLA's structure: one model trained on one language after another."""


# ---------------------------------------------------------------------------------------------
# Hard layer freezing
# ---------------------------------------------------------------------------------------------

def frozen_groups(settings: FreezeSettings, num_layers: int) -> list[str]:
    """The layers hard freezing keeps fixed: embeddings, the bottom k, the top k and listed ones."""
    where = "strategy.freeze"
    for field_name in ("bottom", "top"):
        value = getattr(settings, field_name)
        if not 0 <= value <= num_layers:
            raise NbforgetError(f"{where}.{field_name} is {value}; the model has {num_layers} layers")
    for index, layer in enumerate(settings.layers):
        if not 0 <= layer < num_layers:
            raise NbforgetError(
                f"{where}.layers[{index}] is {layer}; layers are numbered 0 .. {num_layers - 1} from the bottom"
            )
    indices = set(settings.layers) | set(range(settings.bottom)) | set(range(num_layers - settings.top, num_layers))
    return (["embeddings"] if settings.embeddings else []) + [f"layer.{i}" for i in sorted(indices)]


@register
class Freeze(SequentialStrategy):
    name = "freeze"
    settings = ("freeze",)
    page_section = "freeze"
    title = "FREEZE: hard layer freezing"
    description = (
        "Sequential full fine-tuning in which chosen layers (embeddings, the bottom or top k, or a "
        "list) get no updates: for the whole sequence, or from the second language on (after_first), "
        "so the first language may still adapt every layer. The head always trains: it is the task's, "
        "not the pretrained model's."
    )

    def initial_model(self):
        model = self.context.new_model()
        self.frozen = frozen_groups(self.context.config.strategy.freeze, model.config.num_hidden_layers)
        return model

    def before_language(self, model, step: Step):
        if step.index > 0 or not self.context.config.strategy.freeze.after_first:
            for name, parameter in model.named_parameters():
                if parameter_group(name) in self.frozen:
                    parameter.requires_grad_(False)  # the optimizer only gets trainable parameters
        return super().before_language(model, step)

    def step_record(self, model, step: Step) -> dict:
        """The layer groups that got no update at this step."""
        trainable = {parameter_group(n) for n, p in model.named_parameters() if p.requires_grad}
        return {"frozen": [group for group in self.frozen if group not in trainable]}


# ---------------------------------------------------------------------------------------------
# Soft regularization: L2-SP and EWC
# ---------------------------------------------------------------------------------------------

def layer_factors(model, weights: dict[str, float], *, head: float) -> dict[str, float]:
    """Per trainable parameter: its layer's factor from `layer_weights` (default 1; `head` for the
    head). Parameters with factor 0 are left out, so the penalty never touches them."""
    check_groups(weights, model, "strategy.regularization.layer_weights", head=True)
    factors = {}
    for name, parameter in model.named_parameters():
        group = parameter_group(name)
        factor = weights.get(group, head if group == HEAD else 1.0)
        if parameter.requires_grad and factor != 0.0:
            factors[name] = float(factor)
    return factors


@register
class L2SP(SequentialStrategy):
    name = "l2sp"
    settings = ("regularization",)
    page_section = "regularization"
    title = "L2-SP: soft regularization toward the pretrained weights"
    description = (
        "Sequential full fine-tuning with the penalty w * sum_layers f_layer * ||theta - theta_base||^2 "
        "(Li et al. 2018) on every language, so the encoder drifts from the pretrained weights only "
        "as far as the task pays for. The head is fresh, with no pretrained value to stay near, so it "
        "is free unless layer_weights gives it a factor (then it is held near its initialisation)."
    )

    def initial_model(self):
        model = self.context.new_model()
        settings = self.context.config.strategy.regularization
        self.factors = layer_factors(model, settings.layer_weights, head=0.0)
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.factors}
        return model

    def extra_loss(self, model) -> torch.Tensor | None:
        weight = self.context.config.strategy.regularization.l2_weight
        if weight == 0.0 or not self.factors:
            return None
        terms = [self.factors[n] * (p - self.anchor[n]).pow(2).sum()
                 for n, p in model.named_parameters() if n in self.factors]
        return weight * torch.stack(terms).sum()

    def step_record(self, model, step: Step) -> dict:
        """The penalty's factor per layer group (groups left out are free) and its strength."""
        factors = {parameter_group(n): f for n, f in self.factors.items()}
        return {"l2_weight": self.context.config.strategy.regularization.l2_weight, "layer_factors": factors}


def estimate_fisher(model, data, *, task, names, batch_size: int, batches: int, pad_id: int, seed: int,
                    device) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: the mean over `batches` random mini-batches of `data` of the squared
    gradient of the task loss, per parameter in `names`.

    Gradients are of the batch-mean loss (as in Avalanche's EWC), not per example: cheaper, and a
    constant factor of scale that `ewc_weight` absorbs. Dropout is off and there is no autocast, so
    the estimate is deterministic.
    """

    generator = torch.Generator().manual_seed(seed)
    chosen = length_grouped_batches([len(ids) for ids in data.input_ids], batch_size, generator)[:batches]
    parameters = {n: p for n, p in model.named_parameters() if n in names}
    fisher = {n: torch.zeros_like(p) for n, p in parameters.items()}
    was_training = model.training
    model.eval()
    for indices in chosen:
        model.zero_grad(set_to_none=True)
        batch = {k: v.to(device) for k, v in task.collate(data, indices, pad_id=pad_id).items()}
        model(**batch).loss.backward()
        for n, parameter in parameters.items():
            if parameter.grad is not None:
                fisher[n] += parameter.grad.detach().pow(2)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(1, len(chosen)) for n, f in fisher.items()}


ONLINE = "online"


@register
class EWC(SequentialStrategy):
    name = "ewc"
    settings = ("regularization",)
    page_section = "ewc"
    title = "EWC: elastic weight consolidation"
    description = (
        "Sequential full fine-tuning with the penalty w/2 * sum F (theta - theta*)^2 (Kirkpatrick et "
        "al. 2017): after each language a diagonal Fisher F is estimated on its training data and the "
        "weights theta* are kept. Separate mode keeps one (F, theta*) per past language; online mode "
        "(Schwarz et al. 2018) one running F <- gamma F + F_new with theta* the latest weights. "
        "No penalty on the first language: nothing to protect yet."
    )

    def initial_model(self):
        model = self.context.new_model()
        settings = self.context.config.strategy.regularization
        self.factors = layer_factors(model, settings.layer_weights, head=1.0)  # the head is shared too
        self.fisher: dict[str, dict[str, torch.Tensor]] = {}  # term (language or "online") -> name -> F
        self.anchors: dict[str, dict[str, torch.Tensor]] = {}
        return model

    def terms(self) -> list[str]:
        """Penalty terms in a fixed order (the training order), so a resumed run sums identically."""
        if self.context.config.strategy.regularization.ewc_mode == ONLINE:
            return [ONLINE] if ONLINE in self.fisher else []
        return [language for language in self.trained if language in self.fisher]

    def extra_loss(self, model) -> torch.Tensor | None:
        terms = self.terms()
        if not terms:
            return None
        parameters = dict(model.named_parameters())
        penalty = []
        for term in terms:
            fisher, anchor = self.fisher[term], self.anchors[term]
            penalty += [self.factors[n] * (fisher[n] * (parameters[n] - anchor[n]).pow(2)).sum() for n in self.factors]
        return 0.5 * self.context.config.strategy.regularization.ewc_weight * torch.stack(penalty).sum()

    def after_language(self, model, step: Step, train_data=None):
        super().after_language(model, step, train_data)
        if train_data is None:
            raise NbforgetError("ewc needs the step's training data: after_language(model, step, train_data)")
        settings = self.context.config.strategy.regularization
        fisher = estimate_fisher(
            model, train_data, task=self.context.task, names=self.factors,
            batch_size=self.context.config.train.batch_size, batches=settings.fisher_batches,
            pad_id=model.config.pad_token_id, seed=language_seed(self.context.seed, f"fisher:{step.label}"),
            device=self.context.device,
        )
        anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}
        if settings.ewc_mode == ONLINE:
            previous = self.fisher.get(ONLINE)
            if previous is not None:
                fisher = {n: settings.ewc_gamma * previous[n] + fisher[n] for n in fisher}
            self.fisher, self.anchors = {ONLINE: fisher}, {ONLINE: anchor}
        else:
            self.fisher[step.label], self.anchors[step.label] = fisher, anchor
        return model

    def step_record(self, model, step: Step) -> dict:
        """Fisher mass per layer group (sum of the diagonal over the group's weights) of every
        penalty term after this step: where EWC holds the weights hardest."""
        mass: dict[str, dict[str, float]] = {}
        for term, fisher in self.fisher.items():
            groups: dict[str, float] = {}
            for name, values in fisher.items():
                groups[parameter_group(name)] = groups.get(parameter_group(name), 0.0) + float(values.sum())
            mass[term] = groups
        return {"fisher_mass": mass, "mode": self.context.config.strategy.regularization.ewc_mode}

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for kind, store in (("fisher", self.fisher), ("anchor", self.anchors)):
            for term, values in store.items():
                tensors.update({f"{kind}/{term}/{n}": v for n, v in values.items()})
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        loaded: dict[str, dict[str, dict[str, torch.Tensor]]] = {"fisher": {}, "anchor": {}}
        for key, value in tensors.items():
            kind, term, name = key.split("/", 2)
            loaded[kind].setdefault(term, {})[name] = value.to(self.context.device)
        # parameter order as in the model, whatever order the file had
        self.fisher = {t: {n: v[n] for n in self.factors} for t, v in loaded["fisher"].items()}
        self.anchors = {t: {n: v[n] for n in self.factors} for t, v in loaded["anchor"].items()}


# ---------------------------------------------------------------------------------------------
# Post-hoc weight reversion
# ---------------------------------------------------------------------------------------------

def revert(model, base: dict[str, torch.Tensor], alphas: dict[str, float]) -> None:
    """theta <- theta + alpha (theta_base - theta) for each parameter in `base` (alpha by name).

    alpha = 1 copies the base weights (bitwise equal; the lerp formula would round), alpha = 0
    leaves the parameter alone.
    """
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            alpha = alphas.get(name, 0.0)
            if name not in base or alpha == 0.0:
                continue
            if alpha == 1.0:
                parameter.copy_(base[name])
            else:
                parameter.lerp_(base[name].to(parameter.device), alpha)


@register
class Reversion(SequentialStrategy):
    name = "reversion"
    settings = ("reversion",)
    page_section = "reversion"
    title = "REVERSION: post-hoc weight reversion toward the base"
    description = (
        "Sequential full fine-tuning; after each language (or once at the end) every chosen layer is "
        "moved back toward the pretrained weights, theta <- theta + alpha (theta_base - theta), with "
        "alpha per layer (1 restores the base). The head is never reverted: the base model has no "
        "trained head, only a random one, so reverting it would erase the task rather than restore "
        "pretrained knowledge. With when=end the rows before the last are plain sequential "
        "fine-tuning and the last row shows the reverted model."
    )

    def initial_model(self):
        model = self.context.new_model()
        settings = self.context.config.strategy.reversion
        check_groups(settings.layer_alpha, model, "strategy.reversion.layer_alpha", head=False)
        alphas = {group: settings.layer_alpha.get(group, settings.alpha) for group in encoder_groups(model)}
        for group, alpha in alphas.items():
            if not 0.0 <= alpha <= 1.0:
                field_name = f"layer_alpha.{group}" if group in settings.layer_alpha else "alpha"
                raise NbforgetError(f"strategy.reversion.{field_name} is {alpha}; it must be in [0, 1]")
        self.alphas = {n: alphas[parameter_group(n)] for n, _ in model.named_parameters()
                       if parameter_group(n) != HEAD}
        self.base = cpu_copy(model, self.alphas)  # encoder only: the head is never reverted
        return model

    def after_language(self, model, step: Step, train_data=None):
        super().after_language(model, step, train_data)
        if self.context.config.strategy.reversion.when == "each":
            revert(model, self.base, self.alphas)
        return model

    def finish(self, model):
        if self.context.config.strategy.reversion.when == "end":
            revert(model, self.base, self.alphas)
        return model

    def step_record(self, model, step: Step) -> dict:
        """alpha per layer group, and whether this step's model was reverted."""
        when = self.context.config.strategy.reversion.when
        last = step.index == len(self.context.order) - 1
        alphas = {parameter_group(n): alpha for n, alpha in self.alphas.items()}
        return {"alpha": alphas, "when": when, "reverted": when == "each" or last}
