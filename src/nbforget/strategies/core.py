"""The core study's strategies (Khelli et al. 2025, section 3.2): MULTI, MONO, VANILLA,
SHARED LoRA and NON-SHARED LoRA, and MULTI with a LoRA rank (their Table 1: joint training of one
LoRA adapter), here MULTI LoRA."""
from __future__ import annotations

import torch

from nbforget import NbforgetError
from nbforget.strategies.base import RunContext, Step, Strategy, register


@register
class Vanilla(Strategy):
    name = "vanilla"
    paper_name = "VANILLA"
    sequential_baseline = True
    title = "VANILLA: sequential full fine-tuning"
    description = (
        "One model, all weights trained, one language after another in the given order. "
        "Nothing protects what earlier languages taught it: the baseline for forgetting."
    )



@register
class Multi(Strategy):
    name = "multi"
    paper_name = "MULTI"
    joint_reference = True
    title = "MULTI: joint training on all languages"
    description = (
        "One model trained once on the union of every language's training data. It sees no "
        "sequence, so it cannot forget: the reference the sequential strategies are measured against."
    )

    def steps(self, order):
        return [Step(0, tuple(order))]


@register
class Mono(Strategy):
    name = "mono"
    paper_name = "MONO"
    separate_parameters = "language"
    title = "MONO: one model per language"
    description = (
        "A fresh copy of the base model is fine-tuned on each language alone. A language is scored "
        "with its own model once it has one; languages not yet trained are scored zero-shot with the "
        "latest model. Only one model is in memory at a time, so scores of a language with its own "
        "model are kept, not recomputed: that model never changes again."
    )
    keeps_checkpoint = False
    held_out_scoring = ("with the model of the language each step trained (a fresh copy of the base model "
                        "fine-tuned on that language alone): its zero-shot transfer from that one language, "
                        "as MONO scores a language not trained yet")

    def initial_model(self):
        return None  # built per language

    def before_language(self, model, step: Step):
        del model  # never more than one copy in memory
        return self.context.new_model()

    def model_for(self, model, language: str, step: Step):
        if language in self.trained and language not in step.languages:
            return None  # its own model's score, recorded when it was trained
        return model


def lora_config(context: RunContext):
    from peft import LoraConfig, TaskType

    settings = context.config.strategy.lora
    return LoraConfig(
        task_type=getattr(TaskType, context.task.peft_task_type),
        r=settings.rank,
        lora_alpha=settings.alpha if settings.alpha is not None else settings.rank,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=list(context.task.peft_modules_to_save) or None,  # None: peft's default heads
    )


def check_lora_targets(model, context: RunContext) -> None:
    """Every name in ``strategy.lora.target_modules`` names modules of `model` (peft matches a name
    against the last parts of module names, and ignores one that matches nothing)."""
    names = [name for name, _ in model.named_modules()]
    for index, target in enumerate(context.config.strategy.lora.target_modules):
        if not any(name == target or name.endswith(f".{target}") for name in names):
            linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if isinstance(module, torch.nn.Linear)})
            raise NbforgetError(
                f"strategy.lora.target_modules[{index}] is {target!r}, and no module of the model "
                f"({context.base_source}) is named so; its linear layers are named {', '.join(linear)}: "
                "e.g. --set 'strategy.lora.target_modules=[query,value]'")


@register
class SharedLora(Strategy):
    name = "shared_lora"
    settings = ("lora",)
    paper_name = "SHARED LoRA"
    page_section = "lora"
    title = "SHARED LoRA: one adapter through the whole sequence"
    description = (
        "The base weights stay frozen; one LoRA adapter (and the task head) is trained on one "
        "language after another. Few trainable parameters, all of them shared by every language."
    )
    uses_lora = True

    def initial_model(self):
        from peft import get_peft_model

        model = self.context.new_model()
        check_lora_targets(model, self.context)
        return get_peft_model(model, lora_config(self.context))

    def step_record(self, model, step: Step) -> dict:
        return lora_record(model, self.context)


@register
class MultiLora(SharedLora):
    """MULTI with a LoRA rank (Table 1's rows ``MULTI r = 32, 64, 256``): the paper's method is
    MULTI, so `paper_row` compares it with the row of the study's rank, while its display name
    keeps it apart from MULTI, the joint reference (full fine-tuning), which it is not."""

    name = "multi_lora"
    paper_name = "MULTI"
    title = "MULTI LoRA: one adapter trained on all languages at once"
    description = (
        "The base weights stay frozen; one LoRA adapter (and the task head) is trained once on the "
        "union of every language's training data. Joint training like MULTI, so it sees no sequence "
        "and cannot forget, with the few trainable parameters of SHARED LoRA."
    )

    @classmethod
    def display_name(cls) -> str:
        return cls.title.split(":")[0].strip()  # MULTI LoRA, not the paper's bare MULTI

    def steps(self, order):
        return [Step(0, tuple(order))]


def lora_record(model, context: RunContext) -> dict:
    """Rank, alpha and targets of the adapters, and the active adapter's size next to the head's."""
    settings = context.config.strategy.lora
    adapter = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n and p.requires_grad)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"rank": settings.rank, "alpha": settings.alpha if settings.alpha is not None else settings.rank,
            "target_modules": list(settings.target_modules), "adapter_parameters": adapter,
            "head_parameters": trainable - adapter}


def adapter_name(language: str) -> str:
    return "lang_" + language.replace("-", "_")


@register
class NonSharedLora(Strategy):
    name = "nonshared_lora"
    settings = ("lora",)
    paper_name = "NON-SHARED LoRA"
    separate_parameters = "language"
    page_section = "lora"
    title = "NON-SHARED LoRA: one adapter and head per language"
    description = (
        "The base weights stay frozen; each language gets its own LoRA adapter and head, trained "
        "from scratch on that language only. A language is scored with its own adapter once it has "
        "one, otherwise zero-shot with the latest adapter. Adapters are kept; base weights are never "
        "copied."
    )
    uses_lora = True
    held_out_scoring = ("with the adapter and head of the language each step trained: its zero-shot transfer "
                        "from that one language, as a language not trained yet is scored")

    def initial_model(self):
        return self.context.new_model()

    def _add(self, model, language: str):
        from peft import PeftModel, get_peft_model

        if not isinstance(model, PeftModel):
            check_lora_targets(model, self.context)
            return get_peft_model(model, lora_config(self.context), adapter_name=adapter_name(language))
        model.add_adapter(adapter_name(language), lora_config(self.context))
        return model

    def before_language(self, model, step: Step):
        import torch

        torch.manual_seed(self.context.seed)  # each adapter starts from the same initialisation
        model = self._add(model, step.label)
        model.set_adapter(adapter_name(step.label))
        return model

    def step_record(self, model, step: Step) -> dict:
        model.set_adapter(adapter_name(step.label))
        return lora_record(model, self.context) | {"adapter": adapter_name(step.label)}

    def model_for(self, model, language: str, step: Step):
        own = language if language in self.trained else step.label
        model.set_adapter(adapter_name(own))
        return model

    def prepare_resume(self, model, trained):
        import torch

        for language in trained:
            torch.manual_seed(self.context.seed)
            model = self._add(model, language)
        self.trained = list(trained)
        return model

    def drift_model(self, model):
        return model
