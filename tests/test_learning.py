"""Does anything learn? Every registered strategy beats the untrained base model and chance, and
the training loop's early stopping keeps the best epoch.

The quick profile's own settings (48 SIB-200 sentences of 7 topics, two epochs) show that the code
runs, not that a model learns: every strategy ends at the majority topic there. These tests train
the quick profile's encoder on xSID slot filling of two languages, 200 sentences each, for six
epochs: enough for every strategy to learn slots it could not tag before (slot F1 of the fresh
head is about 0.01; chance, a tagger that predicts no slot, is 0).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nbforget.encoding import Encoded
from nbforget.runs import base_scores, score_matrix
from nbforget.strategies import REGISTRY
from nbforget.tasks.classification import SentenceClassification
from nbforget.train import train_language

LEARNABLE = {"dataset": "xsid", "languages": ["de-DE", "id-ID"],
             "model": {"pretrain_max_sentences_per_language": 600},
             "train": {"epochs": 6, "learning_rate": 0.003, "lora_learning_rate": 0.01, "max_train_examples": 200,
                       "batch_size": 16, "patience": 6}}
MARGIN = 0.05  # slot F1 above the base model's, on average over the languages


@pytest.fixture(scope="module")
def learnable(tmp_path_factory, data_ready):
    from conftest import make_quick_config

    return make_quick_config(tmp_path_factory.mktemp("learnable"), LEARNABLE)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(REGISTRY))
def test_every_strategy_learns_beyond_the_base_model_and_chance(learnable, strategy):
    from nbforget.engine import run_strategy
    from nbforget.strategies import run_store

    path = run_strategy(learnable, strategy, progress=False)
    store = run_store(learnable, strategy)
    result = store.result()
    order = result["order"]
    scores = store.scores()
    matrix = score_matrix(scores, order, metric=result["metrics"]["metric"])
    base = base_scores(scores, order, metric=result["metrics"]["metric"])
    # each language right after it was trained (the diagonal), or after joint training (one row)
    learned = np.diag(matrix) if matrix.shape[0] == matrix.shape[1] else matrix[-1]
    assert learned.mean() > base.mean() + MARGIN, (path, learned, base)
    assert learned.mean() > result["metrics"]["chance"] + MARGIN


# ----------------------------------------------------------------------------- early stopping


def tiny_model():
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=24, pad_token_id=1, type_vocab_size=1,
                              num_labels=3)
    return XLMRobertaForSequenceClassification(config)


def sentences(seed: int, size: int = 24) -> Encoded:
    rng = random.Random(seed)
    ids = [[0] + [rng.randrange(5, 40) for _ in range(rng.randrange(3, 8))] + [2] for _ in range(size)]
    labels = [row[1] % 3 for row in ids]
    return Encoded(ids, labels, list(labels), sum(map(len, ids)))


@pytest.mark.parametrize("dev, patience, epochs, best, trained", [
    ([0.1, 0.5, 0.4, 0.3, 0.9, 0.9], 2, 6, 1, 4),  # two epochs without a better score: stop after epoch 4
    ([0.1, 0.2, 0.3, 0.4], 2, 4, 3, 4),  # always better: every epoch, the last one kept
    ([0.5, 0.5, 0.5], 1, 3, 0, 2),  # a tie is not better: the first of equal epochs is kept
    ([0.3, 0.2, 0.1, 0.6], 5, 4, 3, 4),  # patience longer than the run: no early stop
])
def test_early_stopping_keeps_the_best_epochs_weights(dev, patience, epochs, best, trained):
    model = tiny_model()
    scripted, snapshots = iter(dev), []

    def dev_score(current, data):
        snapshots.append({n: p.detach().clone() for n, p in current.named_parameters()})
        return next(scripted)

    history = train_language(
        model, sentences(0), sentences(1), task=SentenceClassification(("a", "b", "c")), dev_score=dev_score,
        epochs=epochs, batch_size=8, learning_rate=1e-2, weight_decay=0.0, warmup_ratio=0.0, patience=patience,
        bf16=False, seed=0, pad_id=1, device=torch.device("cpu"), progress=False)
    assert history["best_epoch"] == best and history["dev"] == dev[:trained] and len(snapshots) == trained
    assert history["best_dev"] == dev[best]
    for name, parameter in model.named_parameters():  # the best epoch's weights, not the last epoch's
        assert torch.equal(parameter, snapshots[best][name]), name
    if best != trained - 1:
        assert any(not torch.equal(snapshots[best][n], snapshots[-1][n]) for n in snapshots[best])


@pytest.mark.parametrize("head_learning_rate", [None, 1e-2])
def test_head_learning_rate_trains_the_head_at_its_own_rate(head_learning_rate):
    """With the encoder's rate near zero, only a head with its own rate moves."""
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = train_language(
        model, sentences(0), sentences(1), task=SentenceClassification(("a", "b", "c")),
        dev_score=lambda current, data: 0.0, epochs=2, batch_size=8, learning_rate=1e-12, weight_decay=0.0,
        warmup_ratio=0.0, patience=5, bf16=False, seed=0, pad_id=1, device=torch.device("cpu"), progress=False,
        head_learning_rate=head_learning_rate)
    assert history["steps"] == 6

    def moved(prefix):
        return max(float((p - before[n]).abs().max()) for n, p in model.named_parameters() if n.startswith(prefix))

    assert moved("roberta.") < 1e-6  # embeddings and layers at 1e-12
    assert (moved("classifier.") > 1e-3) == (head_learning_rate is not None)


def test_head_learning_rate_must_be_positive(tmp_path):
    from nbforget import NbforgetError
    from nbforget.config import load_config

    with pytest.raises(NbforgetError, match="train.head_learning_rate"):
        load_config(None, {"train": {"head_learning_rate": 0}})
