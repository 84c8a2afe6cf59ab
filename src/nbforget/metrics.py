"""Forgetting and transfer metrics: pure functions of a score matrix.

Shape convention
----------------
``scores`` is a square ``T x T`` array of floats. ``scores[i, j]`` is the test score on the
language at position ``j`` of the training order after training through position ``i``:
rows are time, columns are languages in training order. Entries on and below the diagonal are
scores on languages already trained; entries above it are zero-shot scores on languages not yet
trained. Scores are in [0, 1] and higher is better; every sign statement below assumes that.
``base[j]`` (length ``T``) is the score on position ``j`` before any fine-tuning, where a run
records it. ``P[i] = mean(scores[i, 0..i])`` is the average over the languages seen by step ``i``.

Some runs leave cells unrecorded (NaN), e.g. the zero-shot upper triangle of a joint or
monolingual baseline. Each function checks only the cells its formula reads and raises
``ValueError`` naming the first missing one; NaN anywhere else is fine.

Held-out languages (scored before training and after every step, never trained) are extra
columns of a run's score matrix, after the trained ones. The metrics above read only the square
part over the trained languages; ``held_out_erosion``, ``held_out_change`` and
``held_out_metrics`` read the extra columns, as a ``steps x K`` array ``H`` of their own.

Per-position results (``performance_shift``, ``mft``, ``mbt``, ``donation``, ``reception``,
``forgetting_by_language``) are arrays of length ``T`` whose entry ``p`` belongs to the language
at position ``p``, with NaN where the formula is undefined.

The definitions follow ``METRICS.md`` of this project; each docstring names the paper or
library convention it reproduces (Khelli et al. 2025, "What Causes Knowledge Loss in
Multilingual Language Models?"; GEM, Lopez-Paz and Ranzato 2017; Avalanche; mammoth / FACIL /
PyCIL; x-continuous-learning, M'hamdi et al. 2023).
"""
from __future__ import annotations

import operator
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "run_metrics",
    "average_seen",
    "final_average",
    "cft",
    "cbt",
    "performance_shift",
    "mft",
    "mbt",
    "donation",
    "reception",
    "bwt",
    "fwt",
    "forgetting",
    "forgetting_by_language",
    "bwt_avg",
    "forget_avg",
    "fwt_avg_k",
    "held_out_erosion",
    "held_out_change",
    "held_out_metrics",
    "POSITIONAL_METRICS",
    "per_order_values",
    "per_language_shift",
    "per_language_hops",
    "per_language_mft",
    "per_language_mbt",
    "average_over_languages",
    "sort_by_mean_over_hops",
    "BOOTSTRAP_METHODS",
    "bootstrap_ci",
    "summarize",
]

FORGETTING_REFERENCES = ("learned", "max")


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _as_matrix(scores, *, name: str = "scores", min_size: int = 1) -> np.ndarray:
    """Return `scores` as a float ``T x T`` array or raise ValueError naming what is wrong."""
    try:
        matrix = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} must be a numeric T x T matrix (rows = after training position i, "
            f"columns = language at position j); could not convert it to floats: {error}"
        ) from None
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D T x T matrix (rows = after training position i, "
            f"columns = language at position j); got ndim={matrix.ndim}, shape={matrix.shape}"
        )
    rows, cols = matrix.shape
    if rows != cols:
        raise ValueError(
            f"{name} must be square, T x T (one row per training step, one column per language "
            f"in training order); got shape {matrix.shape}"
        )
    if rows < min_size:
        raise ValueError(
            f"{name} is {rows} x {cols}; this metric needs at least {min_size} languages "
            f"(a matrix of shape ({min_size}, {min_size}) or larger)"
        )
    return matrix


def _as_base(base, size: int) -> np.ndarray:
    """Return `base` as a float vector of length `size` or raise ValueError."""
    try:
        vector = np.asarray(base, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"base must be numeric, one score per language; {error}") from None
    if vector.shape != (size,):
        raise ValueError(
            f"base must hold one pre-training score per language, shape ({size},) for a "
            f"{size} x {size} score matrix; got shape {vector.shape}"
        )
    return vector


def _require(matrix: np.ndarray, cells: np.ndarray, metric: str, reads: str) -> None:
    """Raise ValueError if any cell in the boolean mask `cells` is not finite."""
    bad = cells & ~np.isfinite(matrix)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{metric} reads {reads}; scores[{i}, {j}] is {matrix[i, j]} in the "
            f"{matrix.shape[0]} x {matrix.shape[1]} score matrix ({int(bad.sum())} required "
            f"cell(s) missing)"
        )


def _require_base(base: np.ndarray, positions: Iterable[int], metric: str) -> None:
    for j in positions:
        if not np.isfinite(base[j]):
            raise ValueError(f"{metric} reads base[1..T-1]; base[{j}] is {base[j]}")


def _hop(h, size: int, *, low: int = 0, name: str = "h") -> int:
    """Validate a hop distance: an integer with ``low <= h <= T-1``."""
    if isinstance(h, bool):
        raise ValueError(f"{name} must be an integer hop distance, got {h!r}")
    try:
        value = operator.index(h)
    except TypeError:
        raise ValueError(f"{name} must be an integer hop distance, got {h!r}") from None
    if not low <= value <= size - 1:
        raise ValueError(
            f"{name}={value} is out of range for a {size} x {size} score matrix: expected "
            f"{low} <= {name} <= T-1 = {size - 1}"
        )
    return value


def _mask(size: int) -> np.ndarray:
    return np.zeros((size, size), dtype=bool)


def _diagonal_mask(size: int, upto: int) -> np.ndarray:
    """Mask of the diagonal cells (j, j) for j < upto."""
    mask = _mask(size)
    index = np.arange(upto)
    mask[index, index] = True
    return mask


def _lower_rows_mask(size: int, rows: Iterable[int]) -> np.ndarray:
    """Mask of the cells scores[i, 0..i] for every i in `rows` (what P[i] reads)."""
    mask = _mask(size)
    for i in rows:
        mask[i, : i + 1] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Khelli et al. 2025
# ---------------------------------------------------------------------------------------------


def _seen_average(matrix: np.ndarray) -> np.ndarray:
    """P[i] = mean(scores[i, 0..i]) without validation (cells outside the rows used may be NaN)."""
    size = matrix.shape[0]
    seen = np.tril(np.ones((size, size), dtype=bool))
    total = np.where(seen, matrix, 0.0).sum(axis=1)
    return total / np.arange(1, size + 1)


def average_seen(scores) -> np.ndarray:
    """Average score over the languages seen so far, one value per step.

    ``P[i] = mean_{j=0..i} scores[i, j]``, a vector of length ``T``.

    Higher is better; a falling curve means the model loses more on old languages than it gains
    on the new one. Matches Khelli et al. 2025, section 3.3 and Figure 2 (the curve of average
    F1 over learned languages), and the ``P_t`` of their eq. 9, 13 and 14.
    Reads the diagonal and everything below it.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    _require(matrix, np.tril(np.ones((size, size), dtype=bool)), "average_seen",
             "every scores[i, j] with j <= i (the diagonal and below)")
    return _seen_average(matrix)


def final_average(scores) -> float:
    """Average score over all languages after the last step.

    ``final_average = mean_{j=0..T-1} scores[T-1, j]`` (equal to ``P[T-1]``).

    Higher is better. Matches x-continuous-learning ``final_perf`` and the final average
    accuracy reported by GEM and Avalanche (stream accuracy after the last experience).
    Reads the last row.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    mask = _mask(size)
    mask[size - 1, :] = True
    _require(matrix, mask, "final_average", "the last row scores[T-1, :]")
    return float(matrix[size - 1].mean())


def cft(scores) -> float:
    """Cross-lingual forward transfer: zero-shot score on languages not yet trained.

    ``CFT = mean_{i=0..T-2} [ mean_{j=i+1..T-1} scores[i, j] ]``: averaged first over the future
    languages of each step, then over steps.

    Higher means more zero-shot transfer to unseen languages; it is a level, not a difference,
    so it is never negative for scores in [0, 1]. Matches Khelli et al. 2025 eq. 10-11 (after
    Winata et al. 2023), 0-indexed. Reads the strict upper triangle, so a run that does not
    record zero-shot scores cannot report it.
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    _require(matrix, np.triu(np.ones((size, size), dtype=bool), k=1), "cft",
             "every zero-shot score scores[i, j] with j > i (the strict upper triangle)")
    per_step = [matrix[i, i + 1:].mean() for i in range(size - 1)]
    return float(np.mean(per_step))


def _final_minus_learned(matrix: np.ndarray, metric: str) -> np.ndarray:
    size = matrix.shape[0]
    mask = _diagonal_mask(size, size - 1)
    mask[size - 1, : size - 1] = True
    _require(matrix, mask, metric,
             "scores[j, j] and scores[T-1, j] for every j < T-1 (the diagonal and the last row)")
    index = np.arange(size - 1)
    return matrix[size - 1, index] - matrix[index, index]


def cbt(scores) -> float:
    """Cross-lingual backward transfer: final score against the just-learned score.

    ``CBT = mean_{j=0..T-2} (scores[T-1, j] - scores[j, j])``.

    Negative means forgetting (the final model is worse on earlier languages than right after
    learning them); positive means later languages improved earlier ones. Khelli et al. 2025
    eq. 12 writes ``1/(T-1) sum_{i=1}^{T-1} (R_{T-1,i} - R_{i,i})``; read here, 0-indexed, as the
    final model against the just-learned score over the ``T-1`` languages before the last,
    which is GEM's backward transfer (identical to `bwt`).
    """
    matrix = _as_matrix(scores, min_size=2)
    return float(_final_minus_learned(matrix, "cbt").mean())


def performance_shift(scores) -> np.ndarray:
    """How training the language at step ``s`` moved the scores of the languages before it.

    ``shift[s] = mean_{j<s} scores[s, j] - mean_{j<s} scores[s-1, j]`` for ``s >= 1``;
    ``shift[0]`` is NaN (nothing was learned before the first language).

    Negative means training ``l_s`` was destructive to what was learned before it; positive
    means it helped. Matches Khelli et al. 2025 eq. 9, with ``P_t`` restricted to the languages
    learned before ``l_s`` so the new language's own score does not enter (the paper's
    ``P_t - P_{t+1}`` sign is flipped so that negative means forgetting). Per language, average
    over orders with `per_language_shift`.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    mask = np.tril(np.ones((size, size), dtype=bool), k=-1) | _diagonal_mask(size, size - 1)
    _require(matrix, mask, "performance_shift",
             "scores[s, j] and scores[s-1, j] for every j < s (below the diagonal, and the "
             "diagonal except the last cell)")
    shift = np.full(size, np.nan)
    for s in range(1, size):
        shift[s] = matrix[s, :s].mean() - matrix[s - 1, :s].mean()
    return shift


def mft(scores, h: int) -> np.ndarray:
    """Multi-hop forward transfer of each language, literal reading of Khelli et al. 2025 eq. 13.

    ``MFT_h(l_p) = P[p+h] - P[p-1]``, defined when ``p >= 1`` and ``p+h <= T-1``, NaN elsewhere;
    ``P`` is `average_seen`. ``0 <= h <= T-1``.

    Negative means the seen-average ``h`` steps after learning ``l_p`` is below the average just
    before it. The per-language value is averaged over orders (`per_language_mft`) and the scalar
    ``MFT_h`` over languages (`average_over_languages`), as in the paper.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    hop = _hop(h, size)
    positions = range(1, size - hop)
    rows = {p - 1 for p in positions} | {p + hop for p in positions}
    _require(matrix, _lower_rows_mask(size, rows), f"mft(h={hop})",
             "scores[i, 0..i] for the rows i = p-1 and p+h of every defined position p")
    seen = _seen_average(matrix)
    result = np.full(size, np.nan)
    for p in positions:
        result[p] = seen[p + hop] - seen[p - 1]
    return result


def mbt(scores, h: int) -> np.ndarray:
    """Multi-hop backward transfer of each language, literal reading of Khelli et al. 2025 eq. 14.

    ``MBT_h(l_p) = P[p] - P[p-h-1]``, defined when ``p-h-1 >= 0``, NaN elsewhere; ``P`` is
    `average_seen`. ``0 <= h <= T-1``.

    Negative means the seen-average after learning ``l_p`` is below the average ``h+1`` steps
    earlier. Per language: average over orders (`per_language_mbt`); scalar ``MBT_h``: average
    over languages.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    hop = _hop(h, size)
    positions = range(hop + 1, size)
    rows = set(positions) | {p - hop - 1 for p in positions}
    _require(matrix, _lower_rows_mask(size, rows), f"mbt(h={hop})",
             "scores[i, 0..i] for the rows i = p and p-h-1 of every defined position p")
    seen = _seen_average(matrix)
    result = np.full(size, np.nan)
    for p in positions:
        result[p] = seen[p] - seen[p - hop - 1]
    return result


def donation(scores, h: int) -> np.ndarray:
    """Pairwise donor view: effect of training ``l_p`` on the language ``h+1`` positions later.

    ``donation_h(l_p) = scores[p, p+h+1] - scores[p-1, p+h+1]``, defined when ``p >= 1`` and
    ``p+h+1 <= T-1``, NaN elsewhere. ``0 <= h <= T-1``.

    Positive means training ``l_p`` raised the zero-shot score of the later language (``l_p``
    donates); negative means it lowered it. A pairwise companion to Khelli et al.'s MFT, named
    distinctly because it is not their formula. Reads zero-shot cells above the diagonal.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    hop = _hop(h, size)
    positions = range(1, size - hop - 1)
    mask = _mask(size)
    for p in positions:
        mask[p, p + hop + 1] = mask[p - 1, p + hop + 1] = True
    _require(matrix, mask, f"donation(h={hop})",
             "the zero-shot cells scores[p, p+h+1] and scores[p-1, p+h+1]")
    result = np.full(size, np.nan)
    for p in positions:
        result[p] = matrix[p, p + hop + 1] - matrix[p - 1, p + hop + 1]
    return result


def reception(scores, h: int) -> np.ndarray:
    """Pairwise receiver view: effect on ``l_p`` of training the language ``h+1`` positions later.

    ``reception_h(l_p) = scores[p+h+1, p] - scores[p+h, p]``, defined when ``p+h+1 <= T-1``,
    NaN elsewhere. ``0 <= h <= T-1``.

    Negative means training the later language made the model forget ``l_p``; positive means
    ``l_p`` received a benefit. A pairwise companion to Khelli et al.'s MBT, named distinctly
    because it is not their formula.
    """
    matrix = _as_matrix(scores)
    size = matrix.shape[0]
    hop = _hop(h, size)
    positions = range(0, size - hop - 1)
    mask = _mask(size)
    for p in positions:
        mask[p + hop + 1, p] = mask[p + hop, p] = True
    _require(matrix, mask, f"reception(h={hop})",
             "the cells scores[p+h+1, p] and scores[p+h, p]")
    result = np.full(size, np.nan)
    for p in positions:
        result[p] = matrix[p + hop + 1, p] - matrix[p + hop, p]
    return result


# ---------------------------------------------------------------------------------------------
# anchors: GEM, Avalanche, mammoth / FACIL / PyCIL
# ---------------------------------------------------------------------------------------------


def bwt(scores) -> float:
    """GEM / Avalanche backward transfer.

    ``BWT = mean_{j=0..T-2} (scores[T-1, j] - scores[j, j])``.

    Negative means forgetting. Matches GEM (Lopez-Paz and Ranzato 2017, eq. 2) and Avalanche's
    ``BWT`` metric (the negated learned-reference forgetting); equal to `cbt`.
    """
    matrix = _as_matrix(scores, min_size=2)
    return float(_final_minus_learned(matrix, "bwt").mean())


def _column_max_before(matrix: np.ndarray, column: int, stop: int) -> float:
    """max over rows i < stop of scores[i, column]; unrecorded zero-shot cells (NaN) are skipped."""
    return float(np.nanmax(matrix[:stop, column]))


def forgetting_by_language(scores, reference: str = "learned") -> np.ndarray:
    """Forgetting of each language at the end of training; NaN for the last language.

    ``reference="learned"`` (Avalanche): ``f[j] = scores[j, j] - scores[T-1, j]``.
    ``reference="max"`` (mammoth / FACIL / PyCIL): ``f[j] = max_{i<T-1} scores[i, j] -
    scores[T-1, j]``.

    Positive means forgotten (the opposite sign of `bwt`). The learned reference is the last row
    of Avalanche's ``evaluation.functional.forgetting`` matrix. For the max reference the cells
    from the diagonal down are required; zero-shot cells above the diagonal join the max when
    recorded and are skipped when NaN. FACIL, mammoth and PyCIL never evaluate future tasks (they
    fill zeros there), so they agree with this unless a zero-shot score beats every post-training
    score; mammoth and PyCIL also put the final row in the max, which clips each term at zero,
    whereas here (and in FACIL) a language that improved at the end has negative forgetting.
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    if reference not in FORGETTING_REFERENCES:
        raise ValueError(
            f"unknown forgetting reference {reference!r}; expected one of {FORGETTING_REFERENCES}"
        )
    result = np.full(size, np.nan)
    if reference == "learned":
        result[: size - 1] = -_final_minus_learned(matrix, f"forgetting(reference={reference!r})")
        return result
    mask = np.tril(np.ones((size, size), dtype=bool))
    mask[:, size - 1] = False
    mask[size - 1, : size - 1] = True
    _require(matrix, mask, "forgetting(reference='max')",
             "scores[i, j] for j <= i (the diagonal and below) in every column j < T-1")
    for j in range(size - 1):
        result[j] = _column_max_before(matrix, j, size - 1) - matrix[size - 1, j]
    return result


def forgetting(scores, reference: str = "learned") -> float:
    """Average forgetting over the languages before the last.

    ``reference="learned"`` (Avalanche): ``mean_{j<T-1} (scores[j, j] - scores[T-1, j])``,
    which is ``-bwt``.
    ``reference="max"`` (mammoth / FACIL / PyCIL): ``mean_{j<T-1} (max_{i<T-1} scores[i, j] -
    scores[T-1, j])``.

    Positive means forgotten; zero means nothing lost. See `forgetting_by_language` for the
    per-language values and how unrecorded zero-shot cells are treated.
    """
    return float(np.nanmean(forgetting_by_language(scores, reference)))


def fwt(scores, base) -> float:
    """GEM forward transfer: zero-shot score on the next language above its pre-training score.

    ``FWT = mean_{j=1..T-1} (scores[j-1, j] - base[j])``.

    Positive means training on earlier languages lifted the next one above the base model;
    negative means it pushed it below. Matches GEM (Lopez-Paz and Ranzato 2017, eq. 3), and
    x-continuous-learning's `fwt_avg_k` with ``k=1``. ``base[0]`` is not read.
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    vector = _as_base(base, size)
    index = np.arange(1, size)
    mask = _mask(size)
    mask[index - 1, index] = True
    _require(matrix, mask, "fwt", "the cells scores[j-1, j] just above the diagonal")
    _require_base(vector, index, "fwt")
    return float(np.mean(matrix[index - 1, index] - vector[index]))


# ---------------------------------------------------------------------------------------------
# x-continuous-learning step-averaged variants
# ---------------------------------------------------------------------------------------------


def bwt_avg(scores) -> float:
    """x-continuous-learning step-averaged backward transfer.

    ``bwt_avg = mean_{i=1..T-1} [ mean_{j<i} (scores[i, j] - scores[j, j]) ]``: at every step,
    the change on each earlier language since it was learned, averaged over those languages,
    then over steps.

    Negative means forgetting. Unlike GEM's `bwt`, which looks only at the final row, every
    intermediate step counts equally. Matches ``bwt_avg`` of x-continuous-learning
    (M'hamdi et al. 2023, ``results_analysis/summarize_metrics.py``).
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    mask = np.tril(np.ones((size, size), dtype=bool), k=-1) | _diagonal_mask(size, size - 1)
    _require(matrix, mask, "bwt_avg",
             "scores[i, j] for j < i and the diagonal scores[j, j] for j < T-1")
    diagonal = np.diag(matrix)
    per_step = [np.mean(matrix[i, :i] - diagonal[:i]) for i in range(1, size)]
    return float(np.mean(per_step))


def forget_avg(scores) -> float:
    """x-continuous-learning step-averaged forgetting.

    ``forget_avg = mean_{i=1..T-1} [ mean_{j<i} (max_{i'<i} scores[i', j] - scores[i, j]) ]``:
    at every step, the drop of each earlier language from its best score so far, averaged over
    those languages, then over steps.

    Positive means forgotten. The max runs over all earlier rows, zero-shot rows above the
    diagonal included when recorded (NaN zero-shot cells are skipped), as in
    x-continuous-learning's ``forget_avg`` (M'hamdi et al. 2023).
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    mask = np.tril(np.ones((size, size), dtype=bool), k=-1) | _diagonal_mask(size, size - 1)
    _require(matrix, mask, "forget_avg",
             "scores[i, j] for j < i and the diagonal scores[j, j] for j < T-1")
    per_step = []
    for i in range(1, size):
        drops = [_column_max_before(matrix, j, i) - matrix[i, j] for j in range(i)]
        per_step.append(np.mean(drops))
    return float(np.mean(per_step))


def fwt_avg_k(scores, base, k: int) -> float:
    """x-continuous-learning forward transfer at distance ``k``.

    ``fwt_avg_k = mean_{i=0..T-1-k} (scores[i, i+k] - base[i+k])``: the zero-shot score on the
    language ``k`` positions ahead of the one just trained, above its pre-training score.
    ``1 <= k <= T-1``; ``k=1`` is GEM's `fwt`.

    Positive means training lifted languages not yet seen above the base model. Matches
    ``fwt_avg_k`` of x-continuous-learning (M'hamdi et al. 2023).
    """
    matrix = _as_matrix(scores, min_size=2)
    size = matrix.shape[0]
    distance = _hop(k, size, low=1, name="k")
    vector = _as_base(base, size)
    index = np.arange(0, size - distance)
    mask = _mask(size)
    mask[index, index + distance] = True
    _require(matrix, mask, f"fwt_avg_k(k={distance})", "the zero-shot cells scores[i, i+k]")
    _require_base(vector, index + distance, f"fwt_avg_k(k={distance})")
    return float(np.mean(matrix[index, index + distance] - vector[index + distance]))


# ---------------------------------------------------------------------------------------------
# held-out languages: scored at every step, never trained
# ---------------------------------------------------------------------------------------------


def _as_held_out(held_out, *, name: str = "held_out") -> np.ndarray:
    """`held_out` as a float ``steps x K`` array with no missing cell, or ValueError."""
    try:
        matrix = np.asarray(held_out, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric steps x K matrix (rows = after step i, columns = held-out "
                         f"languages); could not convert it to floats: {error}") from None
    if matrix.ndim != 2 or matrix.shape[0] < 1:
        raise ValueError(f"{name} must be a 2-D steps x K matrix with at least one step (rows = after step i, "
                         f"columns = held-out languages); got shape {matrix.shape}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        i, h = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{name}[{i}, {h}] is not finite: a held-out language is scored after every step")
    return matrix


def held_out_erosion(held_out) -> np.ndarray:
    """Erosion of the best zero-shot score of each held-out language.

    ``erosion[h] = H[T-1, h] - max_{i=0..T-1} H[i, h]``, where ``H`` (``steps x K``) holds the
    scores of the ``K`` held-out languages after each step (the score matrix's extra columns).

    Never positive: 0 when the final model is the best one the run had on that language, negative
    by how much later training lost of the zero-shot transfer it once reached. The measure
    ``METRICS.md`` gives for task fine-tuning, whose base model has an untrained head (so its score
    is no reference). It is the max-based forgetting of mammoth / FACIL / PyCIL with CBT's sign,
    except that the maximum runs over every step, the final one included, so that it is never
    positive. A single step (joint training) gives 0.
    """
    matrix = _as_held_out(held_out)
    return matrix[-1] - matrix.max(axis=0)


def held_out_change(held_out, base) -> np.ndarray:
    """Change of each held-out language's score against the base model.

    ``change[h] = H[T-1, h] - b[h]``: the final model's score minus the score before any
    fine-tuning (``b``, the base model with a fresh head, scored at step -1).

    Positive means fine-tuning on the trained languages transferred to the held-out one. The
    measure ``METRICS.md`` gives where the base's score means something (language modelling, a
    probe on frozen representations); for task fine-tuning the base sits near chance, so this is
    the net zero-shot transfer gained, and `held_out_erosion` says how much of it was lost.
    """
    matrix = _as_held_out(held_out)
    try:
        vector = np.asarray(base, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"base must be numeric, one score per held-out language; {error}") from None
    if vector.shape != (matrix.shape[1],):
        raise ValueError(f"base must hold one pre-training score per held-out language, shape ({matrix.shape[1]},); "
                         f"got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError(f"base[{int(np.argwhere(~np.isfinite(vector))[0][0])}] is not finite: the base model "
                         "scores every held-out language")
    return matrix[-1] - vector


def held_out_metrics(held_out, base=None) -> dict[str, float]:
    """What a run records about its held-out languages, each a mean over them: ``held_out_final``
    (``mean_h H[T-1, h]``), ``held_out_best`` (``mean_h max_i H[i, h]``), ``held_out_erosion``
    (`held_out_erosion`) and, when `base` is given, ``held_out_base`` and ``held_out_change``
    (`held_out_change`). Empty for a run without held-out languages (``K = 0``)."""
    matrix = np.asarray(held_out, dtype=float)
    if matrix.ndim == 2 and matrix.shape[1] == 0:
        return {}
    matrix = _as_held_out(matrix)
    summary = {"held_out_final": float(matrix[-1].mean()), "held_out_best": float(matrix.max(axis=0).mean()),
               "held_out_erosion": float(held_out_erosion(matrix).mean())}
    if base is not None:
        summary.update(held_out_base=float(np.mean(base)), held_out_change=float(held_out_change(matrix, base).mean()))
    return summary


# ---------------------------------------------------------------------------------------------
# uncertainty
# ---------------------------------------------------------------------------------------------


BOOTSTRAP_METHODS = ("percentile", "basic", "BCa")
"""Interval methods of `bootstrap_ci` (scipy.stats.bootstrap's)."""


def bootstrap_ci(
    values, *, n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float, float]:
    """Mean and bootstrap interval of the mean, over orders or seeds (`scipy.stats.bootstrap`).

    Draws ``n_resamples`` resamples of ``values`` with replacement and takes each resample's
    mean. With ``method="percentile"`` (the default) it returns ``(mean, low, high)`` with ``low``
    and ``high`` the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of those means;
    ``"BCa"`` moves the two quantiles to correct for the bias and skew of the resample means
    (Efron and Tibshirani 1993, ch. 14), ``"basic"`` reflects the percentile interval about the
    mean. Deterministic for a given ``seed`` (numpy's ``default_rng(seed)``, resamples drawn in
    blocks of at most 2,000,000 values, so memory stays bounded for long value lists).

    With a single value the spread is unknown, so the interval is ``(nan, nan)``: the result is
    ``(v, nan, nan)``, never a zero-width interval that would look like certainty. Constant
    values give the zero-width interval ``(v, v, v)`` whatever the method (every resample has
    mean v; BCa's acceleration would be 0/0 there).
    """
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError("bootstrap_ci needs at least one value; got an empty sequence")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"bootstrap_ci needs finite values; got {int((~np.isfinite(array)).sum())} "
            f"NaN/inf among {array.size} (drop undefined entries before summarizing)"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if str(method).lower() not in {name.lower() for name in BOOTSTRAP_METHODS}:  # scipy ignores case
        raise ValueError(f"method must be one of {', '.join(BOOTSTRAP_METHODS)}; got {method!r}")
    mean = float(array.mean())
    if array.size == 1:
        return mean, float("nan"), float("nan")
    if np.all(array == array[0]):
        return mean, mean, mean
    from scipy import stats  # here: scipy.stats takes a while to import

    with warnings.catch_warnings():
        if n_resamples == 1:  # scipy's standard error of one resample mean (not used here)
            warnings.filterwarnings("ignore", category=RuntimeWarning)
        result = stats.bootstrap(
            (array,), np.mean, n_resamples=n_resamples, batch=max(1, 2_000_000 // array.size),
            confidence_level=confidence, method=method, rng=np.random.default_rng(seed),
        )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(values, **bootstrap_options) -> dict[str, float]:
    """``{"mean", "ci_low", "ci_high", "n"}`` of `values`; the interval is `bootstrap_ci`'s.

    Keyword options (``n_resamples``, ``confidence``, ``seed``, ``method``) go to `bootstrap_ci`.
    """
    mean, low, high = bootstrap_ci(values, **bootstrap_options)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(np.size(values))}


# ---------------------------------------------------------------------------------------------
# aggregation over orders
# ---------------------------------------------------------------------------------------------

POSITIONAL_METRICS = {
    "performance_shift": lambda matrix, h: performance_shift(matrix),
    "mft": mft,
    "mbt": mbt,
    "donation": donation,
    "reception": reception,
}
"""Per-position metrics `per_order_values` knows; all but performance_shift take a hop h."""

_STATISTICS = ("mean", "ci_low", "ci_high", "n")


def _checked_runs(matrices: Sequence, orders: Sequence) -> list[tuple[np.ndarray, tuple[str, ...]]]:
    """Pair each matrix with its order, checking that column j of matrix k is orders[k][j]."""
    if len(matrices) != len(orders):
        raise ValueError(
            f"got {len(matrices)} score matrices but {len(orders)} orders; pass one order "
            f"(the training sequence of language names) per matrix"
        )
    if len(matrices) == 0:
        raise ValueError("no score matrices given; pass at least one matrix and its order")
    runs = []
    for k, (scores, order) in enumerate(zip(matrices, orders)):
        matrix = _as_matrix(scores, name=f"matrices[{k}]")
        if isinstance(order, str):
            raise ValueError(
                f"orders[{k}] is the string {order!r}; expected a sequence of language names"
            )
        names = tuple(order)
        if len(names) != matrix.shape[0]:
            raise ValueError(
                f"orders[{k}] names {len(names)} languages but matrices[{k}] has shape "
                f"{matrix.shape}; expected an order of length {matrix.shape[0]}"
            )
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"orders[{k}] repeats language(s) {repeated}")
        runs.append((matrix, names))
    return runs


def _hops(hops, runs) -> list[int]:
    smallest = min(matrix.shape[0] for matrix, _ in runs)
    if hops is None:
        return list(range(smallest))
    values = [_hop(h, smallest) for h in hops]
    if not values:
        raise ValueError("hops is empty; pass at least one hop distance, e.g. range(T)")
    return values


def per_order_values(
    matrices: Sequence, orders: Sequence, metric: str, *, hops=None
) -> pd.DataFrame:
    """Long table of a per-position metric over several orders, one row per defined value.

    Columns: ``order`` (index into `orders`), ``position``, ``language``, ``h`` and ``value``.
    `metric` is a key of `POSITIONAL_METRICS`; ``hops`` defaults to ``range(T)`` (``h = 0..9``
    for ten languages; ``performance_shift`` ignores it and reports ``h = 0``). Positions where
    the metric is undefined (NaN) are left out, so each row is one observation.
    """
    if metric not in POSITIONAL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(POSITIONAL_METRICS)}")
    runs = _checked_runs(matrices, orders)
    hop_list = [0] if metric == "performance_shift" else _hops(hops, runs)
    function = POSITIONAL_METRICS[metric]
    rows = []
    for k, (matrix, names) in enumerate(runs):
        for h in hop_list:
            values = function(matrix, h)
            for position, value in enumerate(values):
                if np.isfinite(value):
                    rows.append((k, position, names[position], h, float(value)))
    return pd.DataFrame(rows, columns=["order", "position", "language", "h", "value"])


def _languages_in_order(runs) -> list[str]:
    seen: dict[str, None] = {}
    for _, names in runs:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)


def per_language_shift(matrices: Sequence, orders: Sequence, **bootstrap_options) -> pd.DataFrame:
    """Performance shift per language, averaged over the orders in which it is not first.

    Returns a DataFrame indexed by ``language`` with columns ``mean``, ``ci_low``, ``ci_high``
    (percentile bootstrap over orders, `bootstrap_ci`) and ``n`` (number of orders where the
    shift is defined). Negative means training that language was destructive to the languages
    learned before it (Khelli et al. 2025 eq. 9, averaged over orders as in their Figure 3).
    """
    runs = _checked_runs(matrices, orders)
    table = per_order_values(matrices, orders, "performance_shift")
    records = {}
    for language in _languages_in_order(runs):
        values = table.loc[table["language"] == language, "value"].to_numpy()
        records[language] = _summary_or_empty(values, bootstrap_options)
    frame = pd.DataFrame.from_dict(records, orient="index", columns=list(_STATISTICS))
    frame.index.name = "language"
    frame["n"] = frame["n"].astype(int)
    return frame


def _summary_or_empty(values: np.ndarray, bootstrap_options: dict) -> dict[str, float]:
    if values.size == 0:
        return {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
    return summarize(values, **bootstrap_options)


def per_language_hops(
    matrices: Sequence, orders: Sequence, metric: str = "mft", *, hops=None, **bootstrap_options
) -> pd.DataFrame:
    """Languages x h table of a hop metric, averaged over the orders where it is defined.

    Index: ``language``. Columns: a MultiIndex ``(statistic, h)`` with statistic in ``mean``,
    ``ci_low``, ``ci_high`` (bootstrap over orders) and ``n`` (orders where defined), so
    ``table["mean"]`` is the languages x h heatmap and ``table["n"]`` its counts. `metric` is
    ``"mft"``, ``"mbt"``, ``"donation"`` or ``"reception"``; ``hops`` defaults to ``range(T)``.
    """
    if metric == "performance_shift":
        raise ValueError("performance_shift has no hop; use per_language_shift")
    runs = _checked_runs(matrices, orders)
    hop_list = _hops(hops, runs)
    table = per_order_values(matrices, orders, metric, hops=hop_list)
    languages = _languages_in_order(runs)
    columns = pd.MultiIndex.from_product([_STATISTICS, hop_list], names=["statistic", "h"])
    frame = pd.DataFrame(np.nan, index=pd.Index(languages, name="language"), columns=columns)
    groups = {key: group["value"].to_numpy() for key, group in table.groupby(["language", "h"])}
    for language in languages:
        for h in hop_list:
            summary = _summary_or_empty(groups.get((language, h), np.empty(0)), bootstrap_options)
            for statistic in _STATISTICS:
                frame.loc[language, (statistic, h)] = summary[statistic]
    frame["n"] = frame["n"].astype(int)
    return frame


def per_language_mft(
    matrices: Sequence, orders: Sequence, hops=None, **bootstrap_options
) -> pd.DataFrame:
    """Per-language MFT_h (Khelli et al. 2025 eq. 13), languages x h; see `per_language_hops`.

    Negative means the seen-average after learning the language (and ``h`` more) fell below the
    average just before it.
    """
    return per_language_hops(matrices, orders, "mft", hops=hops, **bootstrap_options)


def per_language_mbt(
    matrices: Sequence, orders: Sequence, hops=None, **bootstrap_options
) -> pd.DataFrame:
    """Per-language MBT_h (Khelli et al. 2025 eq. 14), languages x h; see `per_language_hops`.

    Negative means the seen-average after learning the language is below the average ``h+1``
    steps earlier.
    """
    return per_language_hops(matrices, orders, "mbt", hops=hops, **bootstrap_options)


def _mean_block(table: pd.DataFrame) -> pd.DataFrame:
    if isinstance(table.columns, pd.MultiIndex):
        return table["mean"]
    return table


def average_over_languages(table: pd.DataFrame) -> pd.Series:
    """Scalar MFT_h / MBT_h: the mean over languages of a `per_language_hops` table, per ``h``.

    Languages with no defined value at some ``h`` are left out of that hop's mean (Khelli et
    al. 2025 eq. 13-14 average over the languages ``l in L`` where the hop exists).
    """
    return _mean_block(table).mean(axis=0, skipna=True)


def sort_by_mean_over_hops(table: pd.DataFrame, *, ascending: bool = False) -> pd.DataFrame:
    """Rows of a languages x h table sorted by each language's mean over h, for heatmaps.

    Accepts a `per_language_hops` table (sorted by its ``mean`` block; every block is kept) or a
    plain languages x h frame. Largest first by default; languages with no value go last.
    """
    key = _mean_block(table).mean(axis=1, skipna=True)
    order = key.sort_values(ascending=ascending, na_position="last", kind="stable").index
    return table.loc[order]


def run_metrics(scores, base=None) -> dict[str, float]:
    """What a run records in ``result.json``: the final average (mean of the last row over the
    cells it has), and for a square matrix of more than one step CBT, CFT, forgetting (reference
    ``learned``) and, when `base` is given, FWT."""
    matrix = np.asarray(scores, dtype=float)
    summary = {"final_average": float(np.nanmean(matrix[-1]))}
    if matrix.shape[0] == matrix.shape[1] and matrix.shape[0] > 1:
        summary.update(cbt=cbt(matrix), cft=cft(matrix), forgetting=forgetting(matrix, reference="learned"))
        if base is not None:
            summary["fwt"] = fwt(matrix, base)
    return summary

