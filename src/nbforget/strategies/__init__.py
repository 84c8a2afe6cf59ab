"""Strategies as hooks, and their registry (see `nbforget.strategies.base`); what runs a
profile implies (`planned_runs`: strategies x sweep points x orders x seeds)."""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbforget import NbforgetError
from nbforget.config import RunConfig, leaf_settings, load_config, point_overrides, sweep_axes, sweep_points
from nbforget.languages import resolve_order
from nbforget.runs import RunStore, migrate_record, read_yaml_file
from nbforget.strategies import core  # noqa: F401  (registers the core study's strategies)
from nbforget.strategies import alignment, merging  # noqa: F401  (registers study 2's alignment strategies)
from nbforget.strategies.base import REGISTRY, STRATEGY_GROUPS, RunContext, Step, Strategy, register

__all__ = ["REGISTRY", "STRATEGY_GROUPS", "PlannedRun", "RunContext", "Step", "Strategy", "check_names",
           "get_strategy", "migrate_legacy_runs", "planned_runs", "reference_strategies", "register", "run_store",
           "strategy_config", "strategy_names", "strategy_points", "strategy_settings"]


def strategy_names() -> list[str]:
    return list(REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NbforgetError(f"unknown strategy {name!r}{hint}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _members(name: str) -> list[type[Strategy]]:
    """The strategies a ``by_strategy`` entry `name` applies to: the strategy, or a group's members."""
    return [cls for cls in REGISTRY.values() if cls.name == name or name in cls.groups()]


def _readers(key: str) -> list[str]:
    return [name for name, cls in REGISTRY.items() if cls.reads(key)]


def _unread_hint(key: str, members: list[type[Strategy]]) -> str:
    if key == "train.learning_rate" and all(cls.uses_lora for cls in members):
        return "LoRA strategies train with train.lora_learning_rate: set that instead"
    if key == "train.lora_learning_rate" and not any(cls.uses_lora for cls in members):
        return "strategies without LoRA train with train.learning_rate: set that instead"
    readers = _readers(key)
    return f"it is read by {', '.join(readers)}" if readers else "no strategy reads it"


def check_names(config: RunConfig, strategies: list[str] | None = None, *, sweep: bool = True) -> RunConfig:
    """`config` when every strategy it names (``strategies``, ``orders_by_strategy``,
    ``by_strategy``) is registered (or, in ``by_strategy``, a group), when every ``by_strategy``
    setting is read by a strategy it applies to, and (with `sweep`) when every sweep axis concerns
    one of `strategies` (default: the profile's); else an error naming the key, the file and the fix."""
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
    for name, entry in config.by_strategy.items():
        members = _members(name)
        if not members:
            names = [*REGISTRY, *STRATEGY_GROUPS]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NbforgetError(
                f"by_strategy.{name} (in {where}): unknown strategy or group {name!r}{hint}; strategies: "
                f"{', '.join(REGISTRY)}; groups: " + "; ".join(f"{group} ({text})" for group, text in STRATEGY_GROUPS.items()))
        for key in leaf_settings(entry or {}):
            if not any(cls.reads(key) for cls in members):
                raise NbforgetError(
                    f"by_strategy.{name}.{key} (in {where}): no strategy of {name!r} "
                    f"({', '.join(cls.name for cls in members)}) reads {key}, so it would change nothing; "
                    f"{_unread_hint(key, members)}")
    listed = list(config.strategies if strategies is None else strategies)
    for axis, keys in sweep_axes(config).items() if sweep else ():
        concerned = [name for name in listed if name in REGISTRY and any(REGISTRY[name].reads(key) for key in keys)]
        if not concerned:
            readers = sorted({reader for key in keys for reader in _readers(key)}, key=list(REGISTRY).index)
            raise NbforgetError(
                f"sweep.{axis} (in {where}): none of the strategies run ({', '.join(listed)}) reads "
                f"{', '.join(keys)}, so the axis would make no run; it is read by {', '.join(readers) or 'none'}: "
                "add one of them to strategies, or remove the axis")
    return config


def strategy_config(config: RunConfig, strategy: str) -> RunConfig:
    """The config `strategy`'s runs train with, record and are named by: `config` with its
    ``by_strategy`` settings (its groups', then its own) applied."""
    return get_strategy(strategy).resolve(config)


def strategy_settings(config: RunConfig, strategy: str) -> dict[str, Any]:
    """Dotted key -> value of the ``by_strategy`` settings that apply to `strategy`'s runs."""
    cls = get_strategy(strategy)
    return config.strategy_overrides(cls.name, cls.groups())


def run_store(config: RunConfig, strategy: str, order=None, seed: int | None = None) -> RunStore:
    """The run folder of `strategy` on `order` (default: the profile's first) and `seed` under
    `config`: named by the run's identity, so other settings give another folder."""
    order = config.orders[0] if order is None else order
    seed = config.seeds[0] if seed is None else seed
    identity = get_strategy(strategy).run_identity(config, resolve_order(order, config.languages), seed)
    return RunStore(config.runs_path, config.profile, strategy, order, seed, identity)


def strategy_points(config: RunConfig, strategy: str) -> list[dict[str, Any]]:
    """The sweep points `strategy` runs, each as dotted key -> value: the product of the axes of
    ``config.sweep`` with a setting it reads (`Strategy.reads`); an axis it does not read would
    only repeat its runs. No sweep (or none it reads): one empty point."""
    cls = get_strategy(strategy)
    axes = {axis: keys for axis, keys in sweep_axes(config).items() if any(cls.reads(key) for key in keys)}
    return sweep_points(axes)


@dataclass(frozen=True)
class PlannedRun:
    """One run a profile implies: its strategy, order, seed, sweep point and run folder."""

    strategy: str
    order: Any
    seed: int
    point: dict  # the sweep point, dotted key -> value (every key of the axes it expands)
    swept: dict  # the point's settings the strategy reads: what tells its runs apart
    config: RunConfig  # the config of the point (before ``by_strategy``, which `run_store` applies)
    store: RunStore

    @property
    def overrides(self) -> dict:
        """The point as nested overrides, for a notebook's ``overrides`` parameter."""
        return point_overrides(self.point)


def planned_runs(config: RunConfig, strategies: list[str] | None = None, *, orders: list | None = None,
                 seeds: list[int] | None = None) -> list[PlannedRun]:
    """Every run of `strategies` (default: the profile's) x their sweep points (`strategy_points`) x
    their orders (`RunConfig.orders_for`, or `orders`) x `seeds` (default: the profile's), each
    once: two points that give a strategy the same run identity are one run."""
    runs, seen = [], set()
    point_configs: dict[str, RunConfig] = {}
    for strategy in config.strategies if strategies is None else strategies:
        cls = get_strategy(strategy)
        for point in strategy_points(config, strategy):
            key = json.dumps(point, sort_keys=True, default=str)
            if key not in point_configs:
                point_configs[key] = config.with_overrides(point_overrides(point))
            point_config = point_configs[key]
            swept = {name: value for name, value in point.items() if cls.reads(name)}
            for order in orders if orders is not None else point_config.orders_for(strategy):
                for seed in seeds if seeds is not None else point_config.seeds:
                    store = run_store(point_config, strategy, order, seed)
                    if store.path in seen:
                        continue
                    seen.add(store.path)
                    runs.append(PlannedRun(strategy, order, seed, point, swept, point_config, store))
    return runs


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

