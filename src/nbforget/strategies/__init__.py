"""Strategies as hooks, and their registry (see `nbforget.strategies.base`)."""
from __future__ import annotations

import difflib
from pathlib import Path

from nbforget import NbforgetError
from nbforget.config import RunConfig, load_config
from nbforget.languages import resolve_order
from nbforget.runs import RunStore, migrate_record, read_yaml_file
from nbforget.strategies import core  # noqa: F401  (registers the core study's strategies)
from nbforget.strategies import alignment, merging  # noqa: F401  (registers study 2's alignment strategies)
from nbforget.strategies.base import REGISTRY, RunContext, Step, Strategy, register

__all__ = ["REGISTRY", "RunContext", "Step", "Strategy", "check_names", "get_strategy", "migrate_legacy_runs",
           "reference_strategies", "register", "run_store", "strategy_names"]


def strategy_names() -> list[str]:
    return list(REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NbforgetError(f"unknown strategy {name!r}{hint}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def check_names(config: RunConfig) -> RunConfig:
    """`config` when every strategy it names (``strategies``, ``orders_by_strategy``) is registered;
    else an error naming the key, the file and the close match."""
    where = getattr(config, "loaded_from", "config")
    for index, strategy in enumerate(config.strategies):
        try:
            get_strategy(strategy)
        except NbforgetError as error:
            raise NbforgetError(f"{error} (in {where}: strategies[{index}])") from None
    for strategy in config.orders_by_strategy:
        try:
            get_strategy(strategy)
        except NbforgetError as error:
            raise NbforgetError(f"{error} (in {where}: orders_by_strategy.{strategy})") from None
    return config


def run_store(config: RunConfig, strategy: str, order=None, seed: int | None = None) -> RunStore:
    """The run folder of `strategy` on `order` (default: the profile's first) and `seed` under
    `config`: named by the run's identity, so other settings give another folder."""
    order = config.orders[0] if order is None else order
    seed = config.seeds[0] if seed is None else seed
    identity = get_strategy(strategy).run_identity(config, resolve_order(order, config.languages), seed)
    return RunStore(config.runs_path, config.profile, strategy, order, seed, identity)


def reference_strategies() -> tuple[str, ...]:
    """The strategies other strategies' pages draw beside their own run (MULTI's level, VANILLA's
    forgetting): the joint reference first, then the sequential baseline."""
    joint = [name for name, cls in REGISTRY.items() if cls.joint_reference]
    baseline = [name for name, cls in REGISTRY.items() if cls.sequential_baseline]
    return tuple(joint + baseline)


def migrate_legacy_runs(root: Path, *, announce=print) -> list[tuple[Path, Path]]:
    """Rename run folders written before folders were named by their settings
    (``.../seed-<seed>``) to their identity's name (``.../seed-<seed>-<digest>``), computed from
    the config they recorded; their records are rewritten without machine paths. Returns the
    (old, new) pairs. A folder whose new name exists already is left alone and reported."""
    moved = []
    for folder in sorted(Path(root).glob("*/*/order-*/seed-*")):
        if not folder.is_dir() or not folder.name.removeprefix("seed-").isdigit():
            continue
        stored = read_yaml_file(folder / "config.yaml")
        config = load_config(None, {key: value for key, value in stored["config"].items()
                                    if key not in ("runs_dir", "data_dir")} | {"runs_dir": str(root)})
        store = run_store(config, stored["strategy"], stored["order_spec"], int(stored["seed"]))
        target = folder.parent / store.path.name
        if target.exists():
            announce(f"left {folder}: {target.name} exists already")
            continue
        migrate_record(folder, store)
        folder.rename(target)
        announce(f"{folder} -> {target.name}")
        moved.append((folder, target))
    return moved

