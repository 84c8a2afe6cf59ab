"""Strategies as hooks, and their registry (see `nbforget.strategies.base`)."""
from __future__ import annotations

import difflib

from nbforget import NbforgetError
from nbforget.strategies import core  # noqa: F401  (registers the core study's strategies)
from nbforget.strategies import alignment, merging  # noqa: F401  (registers study 2's alignment strategies)
from nbforget.strategies.base import REGISTRY, RunContext, Step, Strategy, register

__all__ = ["REGISTRY", "RunContext", "Step", "Strategy", "get_strategy", "register", "strategy_names"]


def strategy_names() -> list[str]:
    return list(REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NbforgetError(f"unknown strategy {name!r}{hint}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]
