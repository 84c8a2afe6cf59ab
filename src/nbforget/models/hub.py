"""Loading a base encoder with a fresh task head, from a local folder or the Hugging Face cache."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from nbforget import NbforgetError
from nbforget.data.types import TAGGING


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    _check_local_folder(source)
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=_offline())
    except OSError as error:
        raise _not_cached(source, error) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _looks_like_a_path(source: str) -> bool:
    """A local folder rather than a hub name (``xlm-roberta-base``, ``intfloat/multilingual-e5-base``)."""
    return Path(source).expanduser().is_absolute() or source.startswith(("./", "../", "~")) or Path(source).exists()


def _check_local_folder(source: str) -> None:
    """A `source` that names a local folder must be a model folder (``save_pretrained``'s output)."""
    if not _looks_like_a_path(source):
        return
    folder = Path(source).expanduser()
    if not folder.exists():
        raise NbforgetError(f"model.name {source!r}: the folder {folder} does not exist; give the path of a local "
                            "model folder (one written by save_pretrained, with config.json), or a Hugging Face "
                            "checkpoint name such as 'xlm-roberta-base'")
    if not folder.is_dir():
        raise NbforgetError(f"model.name {source!r}: {folder} is a file; give the model's folder (with config.json)")
    if not (folder / "config.json").is_file():
        raise NbforgetError(f"model.name {source!r}: the folder {folder} holds no config.json, so it is not a model "
                            "folder; give the folder that save_pretrained wrote")


def _unreadable_weights(source: str, error: Exception) -> NbforgetError:
    """The base model's weights file is damaged (cut short, say): name it and how to get it back."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        files = sorted(folder.glob("*.safetensors")) or [folder]
        where = ", ".join(str(file) for file in files)
        if folder.name.startswith("tiny-") and (folder / "pretraining.json").is_file():  # built by nbforget
            fix = f"delete the folder {folder}: a run with model.name tiny builds the tiny encoder again"
        else:
            fix = ("restore the folder from where it came (`nbforget models convert-e5 --overwrite` for "
                   "e5-small)")
    else:
        where = f"the safetensors file of {source!r} in the Hugging Face cache"
        fix = f"delete {source!r} from the cache (`huggingface-cli delete-cache`) and download it again"
    return NbforgetError(f"model weights {where} cannot be read ({error}); {fix}")


def _not_cached(source: str, error: Exception) -> NbforgetError:
    return NbforgetError(
        f"model {source!r} could not be loaded ({type(error).__name__}); offline, a hub checkpoint must "
        "already be in the Hugging Face cache: run once online without HF_HUB_OFFLINE, or give a local "
        "folder path as model.name"
    )


def load_task_model(source: str, kind: str, num_labels: int, *, seed: int, freeze_embeddings: bool = False):
    """Encoder from `source` with a fresh head: token tagging or sentence classification.

    The head is initialised from `seed`, so two calls with the same seed give identical models.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if kind == TAGGING else AutoModelForSequenceClassification
    torch.manual_seed(seed)
    _check_local_folder(source)
    try:
        with _quiet_transformers():
            model = auto.from_pretrained(source, num_labels=num_labels, local_files_only=_offline())
    except SafetensorError as error:
        raise _unreadable_weights(source, error) from None
    except OSError as error:
        raise _not_cached(source, error) from None
    if freeze_embeddings:
        for parameter in model.base_model.embeddings.parameters():
            parameter.requires_grad_(False)
    return model


def load_intent_slot_model(source: str, num_labels: int, num_intents: int, *, seed: int,
                           freeze_embeddings: bool = False):
    """Encoder from `source` with a fresh slot head and a fresh intent head (`IntentSlotModel`).

    The encoder and slot head are those `load_task_model` gives for tagging with the same `seed`;
    the intent head is initialised after them, from the same seeded generator.
    """
    from nbforget.models.joint import IntentSlotModel

    tagger = load_task_model(source, TAGGING, num_labels, seed=seed, freeze_embeddings=freeze_embeddings)
    return IntentSlotModel(tagger, num_intents)


class _quiet_transformers:
    """Silence the load report (a fresh head is expected to be missing from an encoder checkpoint)."""

    def __enter__(self):
        from transformers.utils import logging

        self.level = logging.get_verbosity()
        logging.set_verbosity_error()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers.utils import logging

        logging.set_verbosity(self.level)
        logging.enable_progress_bar()


def count_parameters(model, *, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
