"""Run configuration: dataclasses, YAML loading with overrides, validation.

A run is described by ``params/defaults.yaml`` (every field, commented), a profile that holds only
its differences from the defaults (``params/profiles/*.yaml``), and overrides given on the command
line or by a notebook. Unknown keys and bad values fail at load time with the field named.

A setting that takes one of a fixed set of values has a ``Literal`` type (`Bf16Setting`,
`MergeMethod`, `DatasetName`, `TaskChoice`, ...): that type is the one list of its values, and `_check_type`
checks it at load, naming the key, the value, the choices and, for a near miss, the close one.

Two sections hold overrides of the other settings rather than settings:

- ``by_strategy``: a strategy's (or a group's: ``lora``, ``full``) own values of ``train``,
  ``model`` and ``strategy`` settings, applied by `RunConfig.for_strategy` wherever a run is
  resolved (`nbforget run`, `nbforget grid`, the strategy notebooks), so they are part of the
  run's recorded config and identity. A setting given as an override (``--set``, a notebook's
  ``overrides``, a sweep point) wins over them.
- ``sweep``: named axes, each a mapping of dotted keys to lists of values (several keys of one
  axis move in lockstep); the grid runs the product of the axes (`sweep_points`).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from nbforget import NbforgetError
from nbforget.languages import (VITALITY_BUCKETS, DatasetName, JoshiClass, get_language, resolve_order,
                                source_code)

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = REPO_ROOT / "params"
DEFAULTS_FILE = PARAMS_DIR / "defaults.yaml"

Bf16Setting = Literal["auto", "on", "off"]  # auto: on where the hardware supports it
EwcMode = Literal["separate", "online"]  # one Fisher per language, or a decayed running Fisher
ReversionWhen = Literal["each", "end"]  # revert after each language, or once at the end
MergeMethod = Literal["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"]
ExpertKind = Literal["language", "family"]  # what one expert is trained on
# slots: the data set's own task, as in the core paper (slot filling on MASSIVE and xSID; SIB-200,
# which has no slots, is topic classification); intent_slots: joint intent classification and slot
# filling (MASSIVE's baseline), on data that carries intents (MASSIVE, xSID)
TaskChoice = Literal["slots", "intent_slots"]


def display_path(path: str | Path) -> str:
    """`path` relative to the repository when it is inside it, so pages and metadata name no
    machine-specific folder; otherwise the absolute path."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@dataclass
class ModelConfig:
    name: str = "tiny"  # "tiny" (built and pretrained here), "e5-small", or a HF checkpoint name/path
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 768
    vocab_size: int = 8000
    max_length: int = 64
    pretrain_epochs: float = 3.0
    pretrain_batch_size: int = 64
    pretrain_learning_rate: float = 5e-4
    pretrain_max_sentences_per_language: int = 3000
    freeze_embeddings: bool = False
    prune_vocabulary: bool = True  # e5-small: keep only the pieces the configured data uses
    seed: int = 0


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 5e-5
    lora_learning_rate: float = 5e-6
    head_learning_rate: float | None = None  # the task head's own learning rate; None: the strategy's
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    patience: int = 5
    bf16: Bf16Setting = "auto"
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    eval_batch_size: int = 128
    evaluate_dev: bool = False  # also score every language's dev split after each step


@dataclass
class LoraSettings:
    rank: int = 32
    alpha: int | None = None  # None: alpha = rank, as in the paper
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])


@dataclass
class FreezeSettings:
    embeddings: bool = True
    bottom: int = 0  # freeze the bottom k transformer layers
    top: int = 0  # freeze the top k transformer layers
    layers: list[int] = field(default_factory=list)  # explicit layer indices
    after_first: bool = True  # True: train everything on the first language, freeze afterwards


@dataclass
class RegularizationSettings:
    l2_weight: float = 0.01  # L2-SP strength (sum over parameters of w * ||theta - theta_base||^2)
    layer_weights: dict[str, float] = field(default_factory=dict)  # "embeddings"/"layer.N"/"head" -> factor
    ewc_weight: float = 100.0
    ewc_mode: EwcMode = "online"
    ewc_gamma: float = 1.0  # decay of the online Fisher
    fisher_batches: int = 8


@dataclass
class ReversionSettings:
    alpha: float = 0.5  # default share moved back toward the base weights
    layer_alpha: dict[str, float] = field(default_factory=dict)  # "embeddings"/"layer.N" -> alpha
    when: ReversionWhen = "each"


@dataclass
class MergeSettings:
    method: MergeMethod = "ties"
    lam: float = 1.0  # task-arithmetic / TIES scaling of the merged update
    density: float = 0.5  # TIES: share of each update's entries kept (largest magnitude)
    experts: ExpertKind = "language"


@dataclass
class StrategySettings:
    lora: LoraSettings = field(default_factory=LoraSettings)
    freeze: FreezeSettings = field(default_factory=FreezeSettings)
    regularization: RegularizationSettings = field(default_factory=RegularizationSettings)
    reversion: ReversionSettings = field(default_factory=ReversionSettings)
    merge: MergeSettings = field(default_factory=MergeSettings)


@dataclass
class ResourceSettings:
    num_cpus: float = 1.0  # CPUs one run reserves on a Ray worker (`nbforget grid --engine ray`)
    num_gpus: float = 0.0  # GPUs one run reserves there; 0 on CPU machines


@dataclass
class RunConfig:
    profile: str = "default"
    dataset: DatasetName = "sib200"
    task: TaskChoice = "slots"
    languages: list[str] = field(default_factory=lambda: ["en-US", "de-DE", "th-TH"])
    held_out_languages: list[str] = field(default_factory=list)  # scored at every step, never trained
    orders: list[Any] = field(default_factory=lambda: [1])  # paper order numbers, "random:SEED", or lists
    orders_by_strategy: dict[str, list[Any]] = field(default_factory=dict)  # strategy -> its own orders
    seeds: list[int] = field(default_factory=lambda: [0])
    strategies: list[str] = field(default_factory=lambda: [
        "multi", "mono", "vanilla", "shared_lora", "multi_lora", "nonshared_lora",
        "freeze", "l2sp", "ewc", "reversion", "merge", "family_experts",
    ])
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    data_dir: str = "data"
    runs_dir: str = "runs"
    vitality_buckets: dict[str, list[JoshiClass]] = field(
        default_factory=lambda: {name: list(classes) for name, classes in VITALITY_BUCKETS.items()}
    )
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    # strategy name or group (lora, full) -> its own train/model/strategy settings (nested or dotted)
    by_strategy: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # axis name -> {dotted key: [values]}; keys of one axis move in lockstep; axes form a product
    sweep: dict[str, dict[str, Any]] = field(default_factory=dict)  # checked by `_check_sweep`

    # Settings of where a run executes, not of what it computes: left out of `to_dict` (so out of
    # a run's recorded config.yaml and of `digest`), so that a run resumes under other resources.
    EXECUTION_FIELDS = ("resources",)

    def orders_for(self, strategy: str) -> list:
        """The orders `nbforget grid` runs for `strategy`: its own list if given, else `orders`."""
        return list(self.orders_by_strategy.get(strategy, self.orders))

    def to_dict(self) -> dict:
        """The settings that define the runs' results (every field but `EXECUTION_FIELDS`)."""
        data = dataclasses.asdict(self)
        for name in self.EXECUTION_FIELDS:
            data.pop(name, None)
        return data

    # Settings that cannot change one run's result: where files live, which runs a grid or a study
    # holds (its strategies, orders and seeds; a run has its own), how analyses group languages,
    # and the profile's name (the run folder's parent already).
    # `by_strategy` and `sweep` only say how a run's own settings are made: a run records and is
    # named by the settings they produce, not by them.
    NOT_RESULT_FIELDS = ("profile", "runs_dir", "data_dir", "strategies", "orders", "orders_by_strategy", "seeds",
                         "vitality_buckets", "by_strategy", "sweep")

    def recorded(self) -> dict:
        """The config as a run folder records it: without where runs and data live (run files hold
        no machine paths; the run folder is where it is)."""
        data = self.to_dict()
        for name in ("runs_dir", "data_dir"):
            data.pop(name, None)
        return data

    def result_settings(self) -> dict:
        """The settings that can change a run's result (see `Strategy.run_identity`). An empty
        ``held_out_languages`` is left out, so that runs made before the setting existed keep
        their identity; a run with held-out languages is another run than one without."""
        data = self.to_dict()
        for name in self.NOT_RESULT_FIELDS:
            data.pop(name, None)
        if not data.get("held_out_languages"):
            data.pop("held_out_languages", None)
        return data

    @property
    def evaluated_languages(self) -> list[str]:
        """Every language a run scores: the trained ``languages``, then ``held_out_languages``
        (the columns of its score matrix, in this order). The base model is built for all of them
        (the tiny encoder's tokenizer and pretraining text, e5-small's pruned vocabulary), as a
        multilingual encoder has seen a held-out language in pretraining; only fine-tuning leaves
        it out."""
        return [*self.languages, *self.held_out_languages]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def explicit(self) -> frozenset[str]:
        """Dotted keys given as overrides (``--set``, a notebook's overrides, a sweep point): they
        win over `by_strategy`, and a swept key among them pins its axis."""
        return getattr(self, "_explicit", frozenset())

    def strategy_overrides(self, name: str, groups: tuple[str, ...] = ()) -> dict[str, Any]:
        """Dotted key -> value of what `by_strategy` gives strategy `name`: the entries of its
        `groups` in turn, then its own entry (the more specific wins), less the explicit keys."""
        applied: dict[str, Any] = {}
        for entry in (*groups, name):
            for key, value in leaf_settings(self.by_strategy.get(entry) or {}).items():
                if not _pinned(key, self.explicit):
                    applied[key] = value
        return applied

    def for_strategy(self, name: str, groups: tuple[str, ...] = ()) -> RunConfig:
        """This config with the `by_strategy` settings of strategy `name` (a member of `groups`)
        applied: the config its runs train with, record and are named by. Applying it again
        changes nothing."""
        applied = self.strategy_overrides(name, groups)
        if not applied:
            return self
        data = dataclasses.asdict(self)
        for key, value in applied.items():
            data = _merge(data, nested_setting(key, value))
        return _carry(self, _build(RunConfig, data, f"by_strategy.{name}"), self.explicit)

    def with_overrides(self, overrides: dict) -> RunConfig:
        """This config with `overrides` (nested) applied on top, as if they had been given at load
        (they count as explicit). Values are assumed checked (a sweep's are, at load)."""
        if not overrides:
            return self
        overrides = _normalize(overrides, "overrides")
        config = _build(RunConfig, _merge(dataclasses.asdict(self), overrides), "overrides")
        return _carry(self, config, self.explicit | explicit_keys(overrides))

    def resolve_path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def data_path(self) -> Path:
        return self.resolve_path(self.data_dir)

    @property
    def runs_path(self) -> Path:
        return self.resolve_path(self.runs_dir)


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if (isinstance(value, dict) and isinstance(out.get(key), dict) and out[key] and key not in _FREE_DICTS
                and not (key in _EMPTY_REPLACES and not value)):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_overrides(base: dict, update: dict) -> dict:
    """Nested overrides `update` on top of `base`, merged the way configs merge."""
    return _merge(base, update)


# user-keyed maps, replaced whole (a sweep given as an override replaces the profile's sweep)
_FREE_DICTS = {"layer_weights", "layer_alpha", "vitality_buckets", "orders_by_strategy", "sweep"}
_EMPTY_REPLACES = {"by_strategy"}  # merged entry by entry, but `by_strategy: {}` clears it
BY_STRATEGY_SECTIONS = ("train", "model", "strategy")  # what a strategy may set for itself
# Top-level settings a sweep cannot vary, and why
_NOT_SWEPT = {
    "seeds": "every seed in `seeds:` is run already; list the seeds there",
    "orders": "every order in `orders:` is run already; list the orders there",
    "orders_by_strategy": "a strategy's orders are listed in `orders_by_strategy:`",
    "strategies": "every strategy in `strategies:` is run already; list them there",
    "by_strategy": "sweep the setting itself (e.g. train.epochs); an axis makes runs only of the strategies "
                   "that read its settings",
    "sweep": "a sweep cannot sweep itself",
}


def _pinned(key: str, explicit: frozenset[str]) -> bool:
    """True when `key` or a setting inside it or around it was given explicitly."""
    return any(key == other or other.startswith(key + ".") or key.startswith(other + ".") for other in explicit)


def _carry(source: RunConfig, target: RunConfig, explicit: frozenset[str]) -> RunConfig:
    """`target` with the load-time attributes of `source` (where it was loaded from) and `explicit`."""
    if hasattr(source, "loaded_from"):
        target.loaded_from = source.loaded_from
    target._explicit = frozenset(explicit)
    return target


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def leaf_settings(data: dict, cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Nested settings `data` as dotted key -> value, down to the fields of the config's
    dataclasses (a map such as ``layer_alpha`` or a list is one value)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        hint = _hints(cls).get(key) if dataclasses.is_dataclass(cls) else None
        name = f"{prefix}{key}"
        if hint is not None and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            out.update(leaf_settings(value, hint, f"{name}."))
        else:
            out[name] = value
    return out


def nested_setting(key: str, value: Any) -> dict:
    """``train.epochs``, 3 -> ``{"train": {"epochs": 3}}``."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def explicit_keys(overrides: dict) -> frozenset[str]:
    """The dotted settings `overrides` gives (not its by_strategy and sweep sections)."""
    return frozenset(key for key in leaf_settings({k: v for k, v in overrides.items()
                                                  if k not in ("by_strategy", "sweep")}))


def _nest_dotted(data: dict, cls: type = RunConfig) -> dict:
    """Settings written with dotted keys (``train.epochs: 3``) as nested mappings; keys inside a
    map of its own (``layer_alpha: {layer.0: 0.5}``) are left as they are."""
    out: dict = {}
    for key, value in data.items():
        key = str(key)
        first, _, rest = key.partition(".")
        hint = _hints(cls).get(first)
        if rest and hint is not None and dataclasses.is_dataclass(hint):
            key, value = first, {rest: value}
        hint = _hints(cls).get(key)
        if hint is not None and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _nest_dotted(value, hint)
        out = _merge(out, {key: value})
    return out


def setting_type(key: str, where: str) -> Any:
    """The type of the setting at dotted `key`, or an error naming the part that is not a setting."""
    cls: Any = RunConfig
    parts = key.split(".")
    for index, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            above = ".".join(parts[:index])
            raise NbforgetError(f"{where}: {above} is one setting (a mapping or list of its own), so {key} is not "
                                f"a setting; give whole values of {above}")
        names = [item.name for item in dataclasses.fields(cls)]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            inside = ".".join(parts[:index]) or "the config"
            hint = f"did you mean {close[0]!r}?" if close else f"{inside} has {', '.join(names)}"
            raise NbforgetError(f"{where}: {key} is not a setting: {inside} has no {part!r}; {hint}")
        cls = _hints(cls)[part]
    return cls


def _flatten_axis(data: dict, prefix: str = "") -> dict:
    """A sweep axis written nested (``strategy: {lora: {rank: [4, 8]}}``, what ``--set
    sweep.rank.strategy.lora.rank=[4,8]`` gives) or with dotted keys, as dotted key -> values."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten_axis(value, f"{name}."))
        else:
            out[name] = value
    return out


def _normalize(data: dict, where: str) -> dict:
    """`data` (a profile or overrides) with its ``by_strategy`` entries nested and its ``sweep``
    axes flattened to dotted keys; shapes that cannot be either are errors naming `where`."""
    data = dict(data)
    by_strategy = data.get("by_strategy")
    if by_strategy is not None:
        if not isinstance(by_strategy, dict):
            raise NbforgetError(
                f"{where}: by_strategy is {by_strategy!r}; it maps strategy names (or the groups lora and full) "
                "to their own settings, e.g. by_strategy: {lora: {train: {epochs: 100, patience: 15}}}")
        entries = {}
        for name, entry in by_strategy.items():
            if entry is None:
                entries[str(name)] = None
                continue
            if not isinstance(entry, dict):
                raise NbforgetError(
                    f"{where}: by_strategy.{name} is {entry!r}; give a mapping of settings, e.g. "
                    f"by_strategy: {{{name}: {{train: {{epochs: 100}}}}}}")
            entry = _nest_dotted(entry)
            for section in entry:
                if section not in BY_STRATEGY_SECTIONS:
                    if section in _hints(RunConfig):
                        rule = (f"{section} is a setting of the whole profile"
                                + (" (orders_by_strategy gives a strategy its own orders)" if section == "orders"
                                   else ""))
                    else:
                        close = difflib.get_close_matches(str(section), BY_STRATEGY_SECTIONS, n=1)
                        rule = f"did you mean {close[0]!r}?" if close else f"{section!r} is not a setting"
                    raise NbforgetError(
                        f"{where}: by_strategy.{name}.{section}: a strategy's own settings are in "
                        f"{_or_list(BY_STRATEGY_SECTIONS)}; {rule}")
            _build(RunConfig, _merge(RunConfig().to_dict(), entry), f"{where}: by_strategy.{name}")
            typed: dict = {}  # values as the config holds them (``2e-4`` a number), for the run's record
            for key, value in leaf_settings(entry).items():
                place = f"{where}: by_strategy.{name}.{key}"
                typed = _merge(typed, nested_setting(key, _check_type(value, setting_type(key, place), place)))
            entries[str(name)] = typed
        data["by_strategy"] = entries
    sweep = data.get("sweep")
    if sweep is not None:
        example = "e.g. sweep: {rank: {strategy.lora.rank: [8, 16]}}"
        if not isinstance(sweep, dict):
            raise NbforgetError(f"{where}: sweep is {sweep!r}; it maps axis names to {{setting: [values]}}, {example}")
        axes = {}
        for axis, keys in sweep.items():
            if not isinstance(keys, dict) or not keys:
                raise NbforgetError(f"{where}: sweep.{axis} is {keys!r}; an axis maps one or more settings to "
                                    f"lists of values, {example}")
            axes[str(axis)] = _flatten_axis(keys)
        data["sweep"] = axes
    return data


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _exponent_number(value: Any) -> Decimal | None:
    """A number written with an exponent and no dot or no exponent sign (``2e-4``, ``1E5``,
    ``1.5e3``): YAML 1.1, which PyYAML reads, takes those for text. None for anything else."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def _or_list(choices) -> str:
    """``a, b or c``."""
    names = [str(choice) for choice in choices]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_choice(value: Any, choices: tuple, where: str) -> Any:
    """`value` if it is one of the `Literal` `choices`, else an error naming them."""
    if isinstance(value, bool) and "on" in choices and "off" in choices:
        # YAML 1.1 reads an unquoted `bf16: on` / `--set train.bf16=off` as a boolean
        value = "on" if value else "off"
    for choice in choices:
        if value == choice and type(value) is type(choice):  # True is not 1, and "1" is not 1
            return choice
    hint = ""
    if isinstance(value, str):
        by_text = {str(choice): choice for choice in choices}
        close = difflib.get_close_matches(value, list(by_text), n=1)
        hint = f"; did you mean {by_text[close[0]]!r}?" if close else ""
    raise NbforgetError(f"{where}: expected {_or_list(choices)}, got {value!r}{hint}")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        return _check_choice(value, args, where)
    if origin is None and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise NbforgetError(f"{where}: expected a mapping of fields of {hint.__name__}, got {value!r}")
        return _build(hint, value, where)
    if args and type(None) in args:
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise NbforgetError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise NbforgetError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()} if args else value
    if hint is float:
        if _exponent_number(value) is not None:
            return float(_exponent_number(value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NbforgetError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        number = _exponent_number(value)
        if number is not None and number == number.to_integral_value():
            return int(number)
        if isinstance(value, bool) or not isinstance(value, int):
            raise NbforgetError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise NbforgetError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise NbforgetError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict, where: str):
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
        raise NbforgetError(f"{where}: unknown key {key!r}{hint}")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _read_yaml(path: Path, *, allow_empty: bool = False) -> dict:
    """The mapping of settings in `path`, or an error naming the file (and the line) and the fix."""
    if path.is_dir():
        profiles = sorted(item.name for item in path.glob("*.yaml"))
        inside = f" (it holds {', '.join(profiles)})" if profiles else ""
        raise NbforgetError(f"params file {path} is a folder{inside}; pass one profile YAML file, "
                            f"e.g. --params {display_path(PARAMS_DIR / 'profiles' / 'quick.yaml')}")
    if not path.exists():
        names = ", ".join(sorted(item.name for item in (PARAMS_DIR / "profiles").glob("*.yaml")))
        raise NbforgetError(f"params file {path} does not exist; profiles are in {PARAMS_DIR / 'profiles'} "
                            f"({names})")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except UnicodeDecodeError as error:
        raise NbforgetError(f"params file {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise NbforgetError(f"{path}{line}: invalid YAML ({problem}{column}); fix that line of the params "
                            "file (nested settings are indented by two spaces under their section)") from None
    if data is None and not allow_empty:
        raise NbforgetError(
            f"profile {path} is empty; a profile lists the settings that differ from params/defaults.yaml "
            "(start from a copy of params/profiles/quick.yaml), or write {} to run every default on "
            "purpose (the full grid, minutes of pretraining first)")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise NbforgetError(f"{path}: expected a mapping of settings at the top level, got a "
                            f"{_yaml_kind(data)}; write one `key: value` per line, e.g. `languages: [en-US, de-DE]`")
    return data


def _yaml_kind(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _key_lines(path: Path) -> dict[str, int]:
    """Dotted key (``train.epochs``, ``languages[2]``) -> its line in the YAML file `path` (1-based)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}

    def walk(node, name: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                inner = f"{name}.{key.value}" if name else str(key.value)
                lines[inner] = key.start_mark.line + 1
                walk(value, inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[f"{name}[{index}]"] = item.start_mark.line + 1
                walk(item, f"{name}[{index}]")

    walk(root, "")
    return lines


def _lookup(data: dict, key: str) -> tuple[bool, Any]:
    """``(found, value)`` of the dotted `key` (list positions left out) in the nested mapping `data`,
    whose keys may be dotted themselves (``sweep: {rank: {strategy.lora.rank: [...]}}``)."""
    def walk(value: Any, parts: list[str]) -> tuple[bool, Any]:
        if not parts:
            return True, value
        if not isinstance(value, dict):
            return False, None
        for count in range(len(parts), 0, -1):
            name = ".".join(parts[:count])
            if name in value:
                found, inner = walk(value[name], parts[count:])
                if found:
                    return found, inner
        return False, None

    return walk(data, key.split("[")[0].split("."))


class Origins:
    """Where each setting of a loaded config came from, for messages: ``--set key=value``, or the
    file and line that set it (the profile, else params/defaults.yaml)."""

    def __init__(self, profile: Path | None = None, profile_data: dict | None = None,
                 overrides: dict | None = None) -> None:
        self.profile, self.profile_data, self.overrides = profile, profile_data or {}, overrides or {}

    def __call__(self, key: str) -> str:
        found, value = _lookup(self.overrides, key)
        if found:
            shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            return f"--set {key.split('[')[0]}={shown}"
        for path, data in ((self.profile, self.profile_data), (DEFAULTS_FILE, None)):
            if path is None or (data is not None and not _lookup(data, key)[0]):
                continue
            lines = _key_lines(path)
            line = lines.get(key) or lines.get(key.split("[")[0])
            return f"{display_path(path)}:{line}" if line else display_path(path)
        return "the defaults"


def load_config(params_file: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults, then the params file (a profile), then overrides; validated into a RunConfig.

    The overrides' settings are the config's `RunConfig.explicit` keys; every `by_strategy`
    entry and every point of the `sweep` is checked here too, so a bad one fails at load."""
    data = _read_yaml(DEFAULTS_FILE, allow_empty=True) if DEFAULTS_FILE.exists() else {}
    data = _normalize(data, display_path(DEFAULTS_FILE))
    where = "params/defaults.yaml"
    path, profile_data = None, None
    if params_file is not None:
        path = Path(params_file)
        if not path.is_absolute() and not path.exists():
            path = REPO_ROOT / path
        profile_data = _read_yaml(path)
        normalized = _normalize(profile_data, str(path))
        _build(RunConfig, _merge(RunConfig().to_dict(), normalized), str(path))  # name the file in errors
        data = _merge(data, normalized)
        data.setdefault("profile", path.stem)
        if "profile" not in profile_data:
            data["profile"] = path.stem
        where = str(path)
    explicit: frozenset[str] = frozenset()
    if overrides:
        normalized = _normalize(overrides, "overrides")
        _build(RunConfig, _merge(RunConfig().to_dict(), normalized), "overrides")
        data = _merge(data, normalized)
        explicit = explicit_keys(normalized)
        where = f"{where} + overrides"
    config = _build(RunConfig, _merge(RunConfig().to_dict(), data), "")
    config._explicit = explicit
    config.loaded_from = where  # for messages of checks made later (strategy names)
    origin = Origins(path, profile_data, overrides)
    validate(config, where, origin)
    _check_by_strategy(config, where, origin)
    config.sweep = _check_sweep(config, where, origin)
    return config


def _check_by_strategy(config: RunConfig, where: str, origin) -> None:
    """Each `by_strategy` entry applied alone gives a valid config (ranges and relations; the
    types were checked where the entry was read). Its names are checked against the registry by
    `nbforget.strategies.check_names`."""
    for name, entry in config.by_strategy.items():
        applied = leaf_settings(entry or {})

        def source(key: str, name=name, applied=applied) -> str:
            return origin(f"by_strategy.{name}.{key}") if key in applied else origin(key)

        try:
            validate(config.for_strategy(name), where, source)
        except NbforgetError as error:
            raise NbforgetError(f"by_strategy.{name}: {error}") from None


def sweep_axes(config: RunConfig) -> dict[str, dict[str, list]]:
    """The axes of `config.sweep` that the grid expands: all but those with a setting given
    explicitly (``--set strategy.lora.rank=8`` pins a rank axis to that value)."""
    return {axis: keys for axis, keys in config.sweep.items()
            if not any(_pinned(key, config.explicit) for key in keys)}


def swept_axis(config: RunConfig, key: str) -> dict[str, list] | None:
    """The settings (dotted key -> values) of the sweep axis of `config` that the grid expands and
    that varies `key`; None when no axis does (or ``--set key=...`` pinned it)."""
    for keys in sweep_axes(config).values():
        if key in keys:
            return dict(keys)
    return None


def sweep_points(axes: dict[str, dict[str, list]]) -> list[dict[str, Any]]:
    """Every point of the product of `axes` (the first axis varies slowest), each as dotted
    key -> value; the settings of one axis move in lockstep. No axes: one empty point."""
    choices = [[{key: values[index] for key, values in keys.items()} for index in range(len(next(iter(keys.values()))))]
               for keys in axes.values()]
    points = []
    for combination in itertools.product(*choices):
        point: dict[str, Any] = {}
        for part in combination:
            point.update(part)
        points.append(point)
    return points


def point_overrides(point: dict[str, Any]) -> dict:
    """A sweep point (dotted key -> value) as nested overrides."""
    overrides: dict = {}
    for key, value in point.items():
        overrides = _merge(overrides, nested_setting(key, value))
    return overrides


def _shown(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _check_sweep(config: RunConfig, where: str, origin) -> dict[str, dict[str, list]]:
    """`config.sweep` with its values typed (``2e-4`` read as a number), or an error naming the
    axis, the setting and the fix; every point of the product must give a valid config."""
    typed: dict[str, dict[str, list]] = {}
    axis_of: dict[str, str] = {}
    for axis, keys in config.sweep.items():
        typed[axis] = {}
        for key, values in keys.items():
            place = f"sweep.{axis}.{key}"
            source = origin(place)
            top = key.split(".")[0]
            if top in _NOT_SWEPT:
                raise NbforgetError(f"{place} (in {source}): {top} cannot be swept: {_NOT_SWEPT[top]}")
            if top in RunConfig.NOT_RESULT_FIELDS or top in RunConfig.EXECUTION_FIELDS:
                raise NbforgetError(
                    f"{place} (in {source}): {top} cannot be swept: it does not change a run's result (it says "
                    "where files live, what a run reserves, or how analyses group languages), so every point "
                    "would be the same run; sweep a setting of model, train, strategy, dataset or languages")
            hint = setting_type(key, f"{place} (in {source})")
            if dataclasses.is_dataclass(hint):
                names = ", ".join(item.name for item in dataclasses.fields(hint))
                raise NbforgetError(f"{place} (in {source}): {key} is a section, not one setting; sweep settings "
                                    f"of it ({names}), e.g. {key}.{dataclasses.fields(hint)[0].name}: [...]")
            if key in axis_of:
                raise NbforgetError(
                    f"{place} (in {source}): {key} is swept by axis {axis_of[key]!r} already; sweep each setting on "
                    "one axis (put settings that change together on the same axis)")
            axis_of[key] = axis
            if not isinstance(values, list) or not values:
                each = " (each value a list itself)" if get_origin(hint) is list else ""
                raise NbforgetError(
                    f"{place} is {values!r} (in {source}); give the list of values to run{each}, e.g. "
                    f"{key}: [{_shown(getattr_dotted(config, key))}, ...]")
            checked = []
            for index, value in enumerate(values):
                try:
                    checked.append(_check_type(value, hint, f"{place}[{index}]"))
                except NbforgetError as error:
                    raise NbforgetError(f"{error} (in {source}); fix that value of the sweep") from None
            typed[axis][key] = checked
        lengths = {key: len(values) for key, values in typed[axis].items()}
        if len(set(lengths.values())) > 1:
            counts = ", ".join(f"{key} has {count}" for key, count in lengths.items())
            raise NbforgetError(
                f"sweep.{axis} (in {origin(f'sweep.{axis}')}): the settings of one axis change in lockstep, so "
                f"their lists must be equally long, but {counts} values; give each the same number, or put "
                "them on separate axes to run every combination")
        rows = list(zip(*typed[axis].values()))
        for index, row in enumerate(rows):
            if row in rows[:index]:
                shown = ", ".join(f"{key}={_shown(value)}" for key, value in zip(typed[axis], row))
                raise NbforgetError(f"sweep.{axis} (in {origin(f'sweep.{axis}')}) lists {shown} twice (positions "
                                    f"{rows.index(row)} and {index}); list each value once")
    for point in sweep_points(typed):
        def source(key: str, point=point) -> str:
            return origin(f"sweep.{axis_of[key]}.{key}") if key in point else origin(key)

        try:
            validate(config.with_overrides(point_overrides(point)), where, source)
        except NbforgetError as error:
            shown = ", ".join(f"{key}={_shown(value)}" for key, value in point.items())
            raise NbforgetError(f"sweep point {shown}: {error}") from None
    return typed


def getattr_dotted(config: RunConfig, key: str) -> Any:
    """The value of the dotted setting `key` of `config`."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
def _validate_held_out(config: RunConfig, where: str, origin) -> None:
    """Each held-out language: a known locale, listed once, not trained, and in the data set."""
    held_out = config.held_out_languages
    for index, locale in enumerate(held_out):
        key = f"held_out_languages[{index}]"
        try:
            get_language(locale)
        except NbforgetError as error:
            raise NbforgetError(f"{error} (in {where}: {key}, from {origin(key)})") from None
        if locale in held_out[:index]:
            raise NbforgetError(
                f"{where}: held_out_languages has duplicates: {locale!r} is held_out_languages"
                f"[{held_out.index(locale)}] and {key} (in {origin('held_out_languages')}); list each locale once")
        if locale in config.languages:
            raise NbforgetError(
                f"{where}: {key} is {locale!r}, which is also languages[{config.languages.index(locale)}] "
                f"(in {origin('held_out_languages')} and {origin('languages')}); a held-out language is never "
                f"trained: drop {locale} from held_out_languages, or from languages to hold it out")
        try:
            source_code(config.dataset, locale)
        except NbforgetError as error:
            text = str(error).replace("drop it from the languages", "drop it from held_out_languages")
            raise NbforgetError(f"{text} (in {where}: {key}, from {origin(key)})") from None


MIN_MAX_LENGTH = 8  # tokens per sentence: <s> and </s> take two of them


def validate(config: RunConfig, where: str, origin=None) -> None:
    """What the types cannot say: ranges, relations between settings, and names defined elsewhere.
    `origin(key)` says where a key's value came from (`Origins`: ``--set ...`` or file and line)."""
    origin = origin or (lambda key: where)

    def refuse(key: str, value, rule: str, *, source: str | None = None) -> None:
        raise NbforgetError(f"{key} is {value!r} (in {origin(source or key)}); {rule}")

    if len(config.languages) < 1:
        raise NbforgetError(f"{where}: languages is empty; list at least one locale (in {origin('languages')})")
    for index, locale in enumerate(config.languages):
        if locale in config.languages[:index]:
            first = config.languages.index(locale)
            raise NbforgetError(
                f"{where}: languages has duplicates: {locale!r} is languages[{first}] and languages[{index}] "
                f"(in {origin('languages')}); list each locale once")
    for index, locale in enumerate(config.languages):
        try:
            get_language(locale)
        except NbforgetError as error:
            source = origin(f"languages[{index}]")
            raise NbforgetError(f"{error} (in {where}: languages[{index}], from {source})") from None
    _validate_held_out(config, where, origin)
    for index, seed in enumerate(config.seeds):
        if seed < 0:
            refuse(f"seeds[{index}]", seed, "seeds are whole numbers from 0 (a run folder is named seed-N)")
    for index, order in enumerate(config.orders):
        try:
            resolve_order(order, config.languages)
        except NbforgetError as error:
            source = origin(f"orders[{index}]")
            raise NbforgetError(f"{error} (in {where}: orders[{index}], from {source})") from None
    # Strategy names are checked against the registry by `nbforget.strategies.check_names`
    # (the registry sits above this layer and imports torch, which loading a config does not need).
    for strategy, orders in config.orders_by_strategy.items():
        for index, order in enumerate(orders):
            try:
                resolve_order(order, config.languages)
            except NbforgetError as error:
                raise NbforgetError(f"{error} (in {where}: orders_by_strategy.{strategy}[{index}])") from None
    train, model, strategy = config.train, config.model, config.strategy
    for name in ("epochs", "batch_size"):
        if getattr(train, name) < 1:
            refuse(f"train.{name}", getattr(train, name), "train.epochs and train.batch_size must be at least 1")
    for name, value, rule in (
            ("train.learning_rate", train.learning_rate, "learning rates must be greater than 0, e.g. 5e-05"),
            ("train.lora_learning_rate", train.lora_learning_rate,
             "learning rates must be greater than 0, e.g. 5e-06"),
            ("model.pretrain_learning_rate", model.pretrain_learning_rate,
             "learning rates must be greater than 0, e.g. 0.0005")):
        if not value > 0:
            refuse(name, value, rule)
    if train.head_learning_rate is not None and not train.head_learning_rate > 0:
        refuse("train.head_learning_rate", train.head_learning_rate,
               "it must be greater than 0, e.g. 0.003, or null to train the head at the strategy's learning rate")
    if train.weight_decay < 0:
        refuse("train.weight_decay", train.weight_decay, "it must be at least 0 (0: no weight decay)")
    if not 0.0 <= train.warmup_ratio <= 1.0:
        refuse("train.warmup_ratio", train.warmup_ratio, "it must be in [0, 1]: the share of steps spent warming up")
    if train.patience < 1:
        refuse("train.patience", train.patience, "it must be at least 1: the epochs without a better dev score "
                                                 "after which training stops (raise train.epochs to train longer)")
    if train.eval_batch_size < 1:
        refuse("train.eval_batch_size", train.eval_batch_size, "it must be at least 1")
    for name in ("max_train_examples", "max_eval_examples"):
        value = getattr(train, name)
        if value is not None and value < 1:
            refuse(f"train.{name}", value, "it must be at least 1, or null for every example of the split")
    if model.max_length < MIN_MAX_LENGTH:
        refuse("model.max_length", model.max_length,
               f"it must be at least {MIN_MAX_LENGTH}: it counts the tokens of a sentence, <s> and </s> included")
    for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size", "pretrain_batch_size"):
        if getattr(model, name) < 1:
            refuse(f"model.{name}", getattr(model, name), "it must be at least 1")
    if model.hidden_size % model.num_heads:
        raise NbforgetError(f"{where}: model.hidden_size must be divisible by model.num_heads "
                            f"({model.hidden_size} by {model.num_heads}; in {origin('model.hidden_size')} "
                            f"and {origin('model.num_heads')})")
    lora = strategy.lora
    if lora.rank < 1:
        refuse("strategy.lora.rank", lora.rank, "the LoRA rank must be at least 1, e.g. 8")
    if lora.alpha is not None and lora.alpha <= 0:
        refuse("strategy.lora.alpha", lora.alpha, "it must be greater than 0, or null for alpha = rank")
    if not 0.0 <= lora.dropout < 1.0:
        refuse("strategy.lora.dropout", lora.dropout, "it must be in [0, 1)")
    if not lora.target_modules:
        refuse("strategy.lora.target_modules", lora.target_modules,
               "list at least one module name, e.g. [query, key, value, dense]")
    for name in ("bottom", "top"):
        if getattr(strategy.freeze, name) < 0:
            refuse(f"strategy.freeze.{name}", getattr(strategy.freeze, name), "it must be at least 0")
    regularization = strategy.regularization
    for name in ("l2_weight", "ewc_weight"):
        if getattr(regularization, name) < 0:
            refuse(f"strategy.regularization.{name}", getattr(regularization, name), "it must be at least 0")
    if regularization.fisher_batches < 1:
        refuse("strategy.regularization.fisher_batches", regularization.fisher_batches, "it must be at least 1")
    if not 0.0 <= strategy.reversion.alpha <= 1.0:
        refuse("strategy.reversion.alpha", strategy.reversion.alpha,
               "it must be in [0, 1]: the share moved back toward the base weights (1 restores the base)")
    for group, alpha in strategy.reversion.layer_alpha.items():
        if not 0.0 <= alpha <= 1.0:
            refuse(f"strategy.reversion.layer_alpha.{group}", alpha, "it must be in [0, 1]",
                   source="strategy.reversion.layer_alpha")  # its keys hold dots (layer.0)
    if not 0.0 < strategy.merge.density <= 1.0:
        refuse("strategy.merge.density", strategy.merge.density,
               "strategy.merge.density must be in (0, 1]: the share of each update's entries TIES keeps")
    runs = config.runs_path
    existing = next((folder for folder in (runs, *runs.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        refuse("runs_dir", config.runs_dir, f"{existing} is a file, and runs_dir must be a folder (created when "
                                             "missing): choose another path, e.g. --set runs_dir=runs")
    for name in ("num_cpus", "num_gpus"):
        if getattr(config.resources, name) < 0:
            raise NbforgetError(f"{where}: resources.{name} must be at least 0, got {getattr(config.resources, name)}")
    bucket_of: dict[int, str] = {}  # the classes 0-5 themselves are checked by the type, JoshiClass
    for bucket, classes in config.vitality_buckets.items():
        for joshi in classes:
            if bucket_of.setdefault(joshi, bucket) != bucket:
                raise NbforgetError(
                    f"{where}: vitality_buckets puts Joshi class {joshi} in both {bucket_of[joshi]!r} "
                    f"and {bucket!r}; put each class in one bucket")
