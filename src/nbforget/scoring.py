"""What goes in one cell of the score matrix: task scores on one test set.

Slot filling follows MASSIVE's own evaluation (FitzGerald et al. 2022, alexa/massive
``src/massive/utils/training_utils.py``): word-level slot names, ``Other`` as the outside label,
a run of identical consecutive slot names as one span, and micro F1 over spans with seqeval in
its default, conlleval-compatible mode. Sentence classification uses accuracy and macro F1.
Language modelling uses mean negative log-likelihood per token, perplexity and bits per byte.

Every scorer takes the ground truth first and the predictions second, and raises ``ValueError``
on empty input or on sequences of different lengths.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
from seqeval.metrics import f1_score as _seqeval_f1

__all__ = [
    "OUTSIDE_LABELS",
    "massive_spans_to_bio",
    "to_bio",
    "slot_f1",
    "accuracy",
    "intent_accuracy",
    "exact_match",
    "macro_f1",
    "mean_nll",
    "perplexity",
    "bits_per_byte",
    "utf8_bytes",
]

OUTSIDE_LABELS = ("Other", "O")
"""Word labels outside any slot: MASSIVE writes ``Other``; ``O`` is accepted as well."""

_BIO_TAG = re.compile(r"^(O|[BI]-.+)$")
_SCHEMES = ("auto", "bio", "massive")


def _check_pair(true, pred, what: str) -> None:
    if len(true) != len(pred):
        raise ValueError(
            f"{what}: got {len(true)} true and {len(pred)} predicted; expected one prediction "
            f"per true item"
        )
    if len(true) == 0:
        raise ValueError(f"{what}: got empty input; expected at least one item")


def massive_spans_to_bio(
    slot_names: Sequence[str], *, outside: Iterable[str] = OUTSIDE_LABELS
) -> list[str]:
    """Turn one sentence of MASSIVE word-level slot names into BIO tags.

    ``["city", "city", "Other", "country", "country"]`` ->
    ``["B-city", "I-city", "O", "B-country", "I-country"]``.

    An outside label (``Other`` or ``O``) becomes ``O``; a run of identical consecutive slot
    names is one span, its first word ``B-`` and the rest ``I-``; a slot name that follows an
    outside word or a different slot opens a new span. This is MASSIVE's ``convert_to_bio``
    without the ``-100`` merging: labelling only the first sub-word of each word, and dropping
    the others, happens in the model code before words reach this function.
    """
    outside_labels = set(outside)
    tags = []
    previous = None
    for name in slot_names:
        name = str(name)
        if name in outside_labels:
            tags.append("O")
        elif name == previous:
            tags.append("I-" + name)
        else:
            tags.append("B-" + name)
        previous = name
    return tags


def _is_bio(sentences: Sequence[Sequence[str]]) -> bool:
    return all(_BIO_TAG.match(str(tag)) for sentence in sentences for tag in sentence)


def to_bio(sentences: Sequence[Sequence[str]], *, scheme: str = "auto") -> list[list[str]]:
    """Bring a list of tagged sentences to BIO form.

    ``scheme="bio"`` keeps the tags as they are; ``"massive"`` converts each sentence with
    `massive_spans_to_bio`; ``"auto"`` (default) keeps them when every tag is ``O``, ``B-x`` or
    ``I-x`` and converts otherwise. The choice is made for the whole list at once.
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {_SCHEMES}")
    if scheme == "bio" or (scheme == "auto" and _is_bio(sentences)):
        return [[str(tag) for tag in sentence] for sentence in sentences]
    return [massive_spans_to_bio(sentence) for sentence in sentences]


def _bio_pairs(true_tags, pred_tags, scheme: str) -> tuple[list[list[str]], list[list[str]]]:
    _check_pair(true_tags, pred_tags, "slot tags (sentences)")
    for index, (true, pred) in enumerate(zip(true_tags, pred_tags)):
        if isinstance(true, str) or isinstance(pred, str):
            raise ValueError(
                f"sentence {index}: tags must be a list of word tags per sentence, got a string"
            )
        if len(true) != len(pred):
            raise ValueError(
                f"sentence {index}: {len(true)} true tags but {len(pred)} predicted; predict one "
                f"tag per word (first sub-word only)"
            )
    return to_bio(true_tags, scheme=scheme), to_bio(pred_tags, scheme=scheme)


def slot_f1(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], *, scheme: str = "auto"
) -> float:
    """Span-level micro F1 of slot filling, MASSIVE's convention.

    ``true_tags`` and ``pred_tags`` are lists of sentences, each a list of word-level tags,
    either in BIO form (``B-x``/``I-x``/``O``) or as MASSIVE slot names per word (``Other``
    outside); see `to_bio` for ``scheme``. Tags are converted to BIO as in MASSIVE, then
    ``seqeval.metrics.f1_score`` (micro average, default conlleval-compatible mode) scores the
    spans: a predicted span counts only if its type and both boundaries match.

    Words are the unit: labelling only the first sub-word of each word happens in the model
    code, which must return one tag per word. Unlike MASSIVE, which pads or truncates a
    prediction of the wrong length with ``Other``, a length mismatch raises ``ValueError``.
    If neither side has any span, F1 is undefined; seqeval then returns 0.0 with a warning.

    MASSIVE's unit case: ``[["X", "X", "Z"]]`` against ``[["X", "X", "Y"]]`` scores 0.5 (one
    of two spans right on each side).
    """
    true_bio, pred_bio = _bio_pairs(true_tags, pred_tags, scheme)
    return float(_seqeval_f1(true_bio, pred_bio))


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Fraction of items whose prediction equals the truth: ``mean(y_true == y_pred)``."""
    _check_pair(y_true, y_pred, "labels")
    return float(np.mean([true == pred for true, pred in zip(y_true, y_pred)]))


def intent_accuracy(true_intents: Sequence, pred_intents: Sequence) -> float:
    """Intent accuracy (MASSIVE ``intent_acc``): fraction of utterances with the right intent."""
    _check_pair(true_intents, pred_intents, "intents")
    return float(np.mean([true == pred for true, pred in zip(true_intents, pred_intents)]))


def exact_match(
    true_intents: Sequence,
    pred_intents: Sequence,
    true_tags: Sequence[Sequence[str]],
    pred_tags: Sequence[Sequence[str]],
    *,
    scheme: str = "auto",
) -> float:
    """Exact-match accuracy (MASSIVE ``ex_match_acc``): intent and every slot tag right.

    An utterance counts when its intent matches and its BIO tag sequence (after the same
    conversion as `slot_f1`) equals the true one word for word.
    """
    _check_pair(true_intents, pred_intents, "intents")
    if len(true_tags) != len(true_intents):
        raise ValueError(
            f"exact_match: got {len(true_intents)} intents but {len(true_tags)} tagged "
            f"sentences; expected one tag sequence per utterance"
        )
    true_bio, pred_bio = _bio_pairs(true_tags, pred_tags, scheme)
    hits = [
        true_intent == pred_intent and true_seq == pred_seq
        for true_intent, pred_intent, true_seq, pred_seq in zip(
            true_intents, pred_intents, true_bio, pred_bio
        )
    ]
    return float(np.mean(hits))


def macro_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    Per class ``c``: ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``, which is defined for every class
    that occurs on either side. A class predicted but never true scores 0 and still counts.
    Equal to scikit-learn's ``f1_score(average="macro")`` with its default label set.
    """
    _check_pair(y_true, y_pred, "labels")
    true = list(y_true)
    pred = list(y_pred)
    classes = dict.fromkeys(true + pred)  # union, in order of first appearance
    scores = []
    for label in classes:
        is_true = np.array([value == label for value in true])
        is_pred = np.array([value == label for value in pred])
        hits = np.sum(is_true & is_pred)
        scores.append(2.0 * hits / (is_true.sum() + is_pred.sum()))
    return float(np.mean(scores))


def _check_count(total_nll: float, count: int, count_name: str) -> None:
    if not math.isfinite(total_nll) or total_nll < 0:
        raise ValueError(
            f"total_nll must be a finite, non-negative sum of per-token negative log-likelihoods "
            f"in nats; got {total_nll}"
        )
    if count <= 0:
        raise ValueError(f"{count_name} must be positive; got {count}")


def mean_nll(total_nll: float, n_tokens: int) -> float:
    """Mean negative log-likelihood per token, in nats: ``total_nll / n_tokens``.

    ``total_nll`` is the sum of ``-ln p(token | context)`` over the ``n_tokens`` predicted
    tokens (the cross-entropy loss summed, not averaged). Lower is better. Depends on the
    tokenizer: compare models with different vocabularies through `bits_per_byte`.
    """
    _check_count(total_nll, n_tokens, "n_tokens")
    return total_nll / n_tokens


def perplexity(total_nll: float, n_tokens: int) -> float:
    """Token perplexity: ``exp(total_nll / n_tokens)`` with the NLL in nats.

    Lower is better; 1 is a perfect model, the vocabulary size a uniform one. Tokenizer
    dependent, like `mean_nll`.
    """
    return math.exp(mean_nll(total_nll, n_tokens))


def bits_per_byte(total_nll_nats: float, n_bytes: int) -> float:
    """Bits per byte: ``total_nll_nats / (ln 2 * n_bytes)``.

    ``total_nll_nats`` is the summed NLL of a text in nats and ``n_bytes`` the length of the same
    text in UTF-8 bytes (`utf8_bytes`). Dividing by bytes rather than tokens makes the number
    comparable across tokenizers and scripts. Lower is better.
    """
    _check_count(total_nll_nats, n_bytes, "n_bytes")
    return total_nll_nats / (math.log(2) * n_bytes)


def utf8_bytes(texts: str | Iterable[str]) -> int:
    """Number of UTF-8 bytes of a text, or the total over an iterable of texts."""
    if isinstance(texts, str):
        return len(texts.encode("utf-8"))
    return sum(len(text.encode("utf-8")) for text in texts)
