"""Scoring: one row of the score matrix (every evaluation set after a step) in batched passes,
and that row as long-form score records.

A row scores every language of the order on every evaluation split with the model a strategy
names for it (`Strategy.model_for`); a language whose own model is final (MONO's, an expert's)
reuses the score it got then instead of being scored again.
"""
from __future__ import annotations

from collections.abc import Callable

from nbforget.tasks import Prepared

Cell = tuple[str, str]  # (evaluated language, split)


def score_row(prepared: Prepared, model_for: Callable[[str], object], languages, splits, *,
              reuse: dict[Cell, dict], batch_size: int, device, bf16: bool) -> dict[Cell, dict]:
    """Scores of every (language, split); ``model_for(language)`` is None where `reuse` holds it."""
    pad_id = prepared.tokenizer.pad_token_id
    row = {}
    for language in languages:
        for split in splits:
            model = model_for(language)
            row[(language, split)] = reuse[(language, split)] if model is None else prepared.task.score(
                model, prepared.encoded[(language, split)], batch_size=batch_size, pad_id=pad_id, device=device,
                bf16=bf16)
    return row


def score_records(order_spec, step_index: int, trained: str, row: dict[Cell, dict]) -> list[dict]:
    """One long-form record per (language, split, metric); step -1 is the base model."""
    return [{"order": str(order_spec), "step": step_index, "trained_language": trained, "eval_language": language,
             "split": split, "metric": name, "value": value}
            for (language, split), values in row.items() for name, value in values.items()]


def own_scores(steps: list[dict]) -> dict[Cell, dict]:
    """Each trained language's latest score from a step that trained it (for `score_row`'s `reuse`)."""
    scores: dict[Cell, dict] = {}
    for record in steps:
        for row in record["scores"]:
            if row["eval_language"] in record["languages"]:
                scores.setdefault((row["eval_language"], row["split"]), {})[row["metric"]] = row["value"]
    return scores
