"""The core paper's reported numbers (Khelli et al. 2025, "What Causes Knowledge Loss in
Multilingual Language Models?"), as printed, and the row each of our strategies is compared with.

    PAPER                                 everything below, in one mapping
    PAPER_SETTING                         their model, data and orders, in one sentence
    PAPER_TABLE1, PAPER_TABLE2            their Tables 1 and 2 as printed (Table 1's F1 in percent)
    PAPER_FIGURE2, PAPER_FIGURE3          what their Figures 2 and 3 report, in numbers and names
    PAPER_FIGURE4                         their Figure 4 (XLM-R against E5), as its paragraph reads it
    PAPER_CLAIMS                          section 5: script, family, vitality, single languages
    PAPER_NAMES                           our strategy -> the paper's method (from the registry)
    paper_row(strategy, rank)             the row of Table 1 (and 2) a strategy is compared with
    paper_method_strategy(method)         our strategy for one of the paper's methods
    paper_table1(), paper_table2()        the tables as DataFrames, F1 as a fraction

Which of our strategies the paper ran, and under which name, is a fact of each strategy class
(``paper_name``, see `nbforget.strategies.base.Strategy`); this module holds only the paper.
"""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from nbforget.strategies import REGISTRY

__all__ = [
    "PAPER",
    "PAPER_SETTING",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_FIGURE2",
    "PAPER_FIGURE3",
    "PAPER_CLAIMS",
    "PAPER_FIGURE4",
    "PAPER_NAMES",
    "PAPER_RANKS",
    "PaperRow",
    "paper_row",
    "paper_method_strategy",
    "paper_table1",
    "paper_table2",
]

PAPER_SETTING = (
    "Khelli et al. (2025): XLM-R base (278M parameters) fine-tuned for slot filling on MASSIVE, "
    "52 languages with 11.5 thousand training examples each, 5 language orders, slot F1"
)


class PaperRow(NamedTuple):
    """One row of the paper's Table 1 (F1 in percent, as printed; params in millions)."""

    method: str
    rank: int | None
    params_m: float
    f1: float
    low: float
    mid: float
    high: float


PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow("MULTI", None, 278.04, 75.03, 75.42, 75.84, 72.63),
    PaperRow("MULTI", 32, 5.36, 74.19, 74.27, 75.17, 71.83),
    PaperRow("MULTI", 64, 10.72, 73.79, 74.00, 74.56, 71.73),
    PaperRow("MULTI", 256, 42.86, 74.11, 74.16, 74.83, 72.41),
    PaperRow("MONO", None, 14458.27, 72.98, 73.66, 74.11, 69.43),
    PaperRow("VANILLA", None, 278.04, 66.16, 65.70, 67.65, 63.46),
    PaperRow("SHARED LoRA", 32, 5.36, 60.24, 59.35, 62.34, 56.75),
    PaperRow("SHARED LoRA", 64, 10.72, 61.26, 60.55, 63.37, 57.48),
    PaperRow("SHARED LoRA", 256, 42.86, 60.16, 59.06, 62.15, 57.22),
    PaperRow("NON-SHARED LoRA", 32, 278.04, 72.14, 72.42, 73.39, 68.89),
    PaperRow("NON-SHARED LoRA", 64, 557.19, 72.38, 72.55, 73.48, 69.65),
    PaperRow("NON-SHARED LoRA", 256, 2228.75, 73.16, 73.82, 74.26, 69.73),
)
"""Table 1: trainable parameters (M) and average F1 (%), overall and by vitality (Joshi classes
0-2 low, 3 mid, 4-5 high). MULTI with a rank is joint training of one LoRA adapter."""

PAPER_TABLE2: dict[tuple[str, int | None], tuple[float, float]] = {
    ("VANILLA", None): (-0.08, 0.55),
    ("SHARED LoRA", 32): (-0.13, 0.52),
    ("SHARED LoRA", 64): (-0.12, 0.53),
    ("SHARED LoRA", 256): (-0.14, 0.51),
}
"""Table 2: (CBT, CFT) per method, on the 0-1 scale."""

PAPER_FIGURE2 = {
    "multi_stays_above": 0.73,  # MULTI (dotted) keeps F1 above 73% throughout
    "vanilla_drop": (0.10, 0.15),  # VANILLA loses 10-15 F1 points over the sequence
    "shared_lora_drop": (0.15, 0.30),  # SHARED LoRA loses 15-30 points
    "nonshared_lora_range": (0.70, 0.73),  # NON-SHARED LoRA stays between 70% and 73%
}
"""Figure 2, as the text of section 4 reads it (score drops as fractions of 1)."""

PAPER_FIGURE3 = {
    "method": "VANILLA",  # the paper's method the figure shows
    "most_destructive": "zh-CN",  # the largest drop of earlier languages' scores
    "best_donor": "de-DE",  # the largest gain of earlier languages' scores
}
"""Figure 3: performance shift per language in VANILLA, averaged over the 5 orders."""

PAPER_FIGURE4 = {
    "models": ("XLM-R base", "E5"),  # the paper's base model, and the one it compares key methods with
    "direction": "XLM-R above E5 overall, E5 above XLM-R in VANILLA",
    "quote": ("Despite variations in methodology, the general pattern of results remains consistent across "
              "models. Overall, XLM-R performs better than E5, except in VANILLA method where E5 tends to "
              "outperform [XLM-R base], though performance degradation due to forgetting is still evident."),
}
"""Figure 4 (XLM-R against E5 across methods), as the paragraph "Comparison XLM-R and E5 Models"
reads it; the figure's own values are not in the text."""

PAPER_CLAIMS = {
    "forgetting_languages": ("zh-CN", "ja-JP", "zh-TW"),  # most negative MBT, worst shifts
    "robust_receivers": ("nb-NO", "ca-ES", "pt-PT", "el-GR"),  # highest MBT across hops
    "script": {
        "weaker": "non-Latin",  # lower MFT (weak donors) and more negative MBT (forget more)
        "stronger": "Latin",
        "measures": ("mft_mean", "mbt_mean"),
    },
    "family": {
        "strong": ("Romance", "Germanic"),  # genera: strong donors, stable receivers
        "poor": ("Sino-Tibetan", "Austro-Asiatic", "Afro-Asiatic"),  # families: poor receivers
    },
    "vitality": {
        "best_final": "mid",  # Table 1: mid vitality has the highest F1 in every method
        "worst_final": "high",  # and high vitality the lowest
        "most_negative_mbt": "high",  # zh-CN, ja-JP, hi-IN
        "weaker_donor_than": ("high", "mid"),  # high-vitality MFT below mid-vitality MFT
    },
}
"""Section 5 (and Table 1's vitality columns), as directions that can be checked (see
`nbforget.analysis.versus_paper.claim_checks`)."""

PAPER_NAMES: dict[str, str] = {name: cls.paper_name for name, cls in REGISTRY.items() if cls.paper_name}
"""Our strategy name -> the paper's method name, for the registered strategies it ran."""

PAPER = {
    "setting": PAPER_SETTING,
    "table1": PAPER_TABLE1,
    "table2": PAPER_TABLE2,
    "figure2": PAPER_FIGURE2,
    "figure3": PAPER_FIGURE3,
    "claims": PAPER_CLAIMS,
    "names": PAPER_NAMES,
}

PAPER_RANKS = (32, 64, 256)
"""The LoRA ranks of Tables 1 and 2."""


def paper_method_strategy(method: str) -> str | None:
    """Our strategy that the paper calls `method` (``"SHARED LoRA"`` -> ``"shared_lora"``), or None."""
    return next((name for name, paper_name in PAPER_NAMES.items() if paper_name == method), None)


def paper_row(strategy: str, rank: int | None = None) -> PaperRow | None:
    """The Table 1 row a strategy is compared with; None for strategies the paper did not run.

    Strategies that train LoRA adapters take the row of `rank` when the paper has it, else the
    r = 32 row (MULTI LoRA takes MULTI's rows with a rank); the others take the method's row without
    a rank (for MULTI: full fine-tuning).
    """
    method = PAPER_NAMES.get(strategy)
    if method is None:
        return None
    candidates = [row for row in PAPER_TABLE1 if row.method == method]
    if len(candidates) == 1 or not REGISTRY[strategy].uses_lora:
        return next(row for row in candidates if row.rank is None)
    wanted = rank if rank in PAPER_RANKS else 32
    return next(row for row in candidates if row.rank == wanted)


def paper_table1() -> pd.DataFrame:
    """Table 1 as printed, its F1 columns (``f1``, ``low``, ``mid``, ``high``) as fractions in [0, 1]."""
    frame = pd.DataFrame([row._asdict() for row in PAPER_TABLE1])
    frame["rank"] = frame["rank"].astype("Int64")
    for column in ("f1", "low", "mid", "high"):
        frame[column] = frame[column] / 100.0
    return frame


def paper_table2() -> pd.DataFrame:
    """Table 2 as printed: one row per method and rank, CBT and CFT on the 0-1 scale."""
    rows = [{"method": method, "rank": rank, "cbt": cbt, "cft": cft}
            for (method, rank), (cbt, cft) in PAPER_TABLE2.items()]
    frame = pd.DataFrame(rows)
    frame["rank"] = frame["rank"].astype("Int64")
    return frame
