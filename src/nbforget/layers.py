"""Layer groups of an encoder, its effective weights (LoRA updates folded in), and drift from the base.

A parameter belongs to ``embeddings``, ``layer.N`` or to no group (the task head, the pooler);
strategies freeze, regularise and revert by these groups, and the engine records each group's
relative distance from the base weights after every step.
"""
from __future__ import annotations

import re

import torch

from nbforget import NbforgetError

LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def layer_group(name: str) -> str | None:
    """Which layer a parameter belongs to: ``embeddings``, ``layer.N``, or None (head, pooler)."""
    match = LAYER.search(name)
    if match:
        return f"layer.{match.group(1)}"
    if ".embeddings." in f".{name}":
        return "embeddings"
    return None


def encoder_weights(model) -> dict[str, torch.Tensor]:
    """Effective encoder weights by canonical name; LoRA updates (B A scale) added where present."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        base = model.get_base_model()
        weights = {}
        for name, parameter in base.named_parameters():
            if "lora_" in name or "modules_to_save" in name or "original_module" in name:
                continue
            weights[name.replace(".base_layer", "")] = parameter.detach()
        for name, module in base.named_modules():
            if hasattr(module, "lora_A") and module.active_adapters:
                adapter = module.active_adapters[0]
                if adapter in module.lora_A:
                    delta = module.lora_B[adapter].weight @ module.lora_A[adapter].weight * module.scaling[adapter]
                    key = f"{name}.weight"
                    weights[key] = weights[key] + delta.detach()
        return {k: v for k, v in weights.items() if layer_group(k)}
    return {n: p.detach() for n, p in model.named_parameters() if layer_group(n)}


def parameter_drift(model, base: dict[str, torch.Tensor]) -> list[dict]:
    """Per layer: ||theta - theta_base|| / ||theta_base|| over all its weights."""
    current = encoder_weights(model)
    sums: dict[str, list[float]] = {}
    for name, weight in base.items():
        if name not in current:
            continue
        group = layer_group(name)
        entry = sums.setdefault(group, [0.0, 0.0])
        entry[0] += float((current[name].float() - weight.float()).pow(2).sum())
        entry[1] += float(weight.float().pow(2).sum())
    return [{"layer": g, "relative_drift": (d ** 0.5) / max(b ** 0.5, 1e-12)} for g, (d, b) in sorted(sums.items())]


HEAD = "head"


def parameter_group(name: str) -> str:
    """``embeddings``, ``layer.N`` or ``head`` (anything outside the encoder's layers)."""
    return layer_group(name) or HEAD


def encoder_groups(model) -> list[str]:
    return ["embeddings"] + [f"layer.{i}" for i in range(model.config.num_hidden_layers)]


def check_groups(keys, model, where: str, *, head: bool) -> None:
    """Fail on a layer key the model does not have, naming the setting."""
    known = encoder_groups(model) + ([HEAD] if head else [])
    for key in keys:
        if key not in known:
            extra = "" if head else f" ({HEAD!r} is not allowed here)"
            raise NbforgetError(
                f"{where}: unknown layer {key!r}{extra}; this model has embeddings, layer.0 .. "
                f"layer.{model.config.num_hidden_layers - 1}" + (" and head" if head else "")
            )


def copy_weights(model, weights: dict[str, torch.Tensor]) -> None:
    """Write `weights` (by parameter name, any device) into `model`'s parameters, exactly."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in weights:
                parameter.copy_(weights[name])


def cpu_copy(model, names=None) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if names is None or n in names}
