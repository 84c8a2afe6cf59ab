"""Loading a base encoder with a fresh task head, from a local folder or the Hugging Face cache."""
from __future__ import annotations

import os

import torch

from nbforget import NbforgetError
from nbforget.data.types import TAGGING


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=_offline())
    except OSError as error:
        raise _not_cached(source, error) from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


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
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForTokenClassification if kind == TAGGING else AutoModelForSequenceClassification
    torch.manual_seed(seed)
    try:
        with _quiet_transformers():
            model = auto.from_pretrained(source, num_labels=num_labels, local_files_only=_offline())
    except OSError as error:
        raise _not_cached(source, error) from None
    if freeze_embeddings:
        for parameter in model.base_model.embeddings.parameters():
            parameter.requires_grad_(False)
    return model


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
