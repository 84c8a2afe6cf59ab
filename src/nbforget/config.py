"""Run configuration: dataclasses, YAML loading with overrides, validation.

A run is described by ``params/defaults.yaml`` (every field, commented), a profile that holds only
its differences from the defaults (``params/profiles/*.yaml``), and overrides given on the command
line or by a notebook. Unknown keys and bad values fail at load time with the field named.

A setting that takes one of a fixed set of values has a ``Literal`` type (`Bf16Setting`,
`MergeMethod`, `DatasetName`, ...): that type is the one list of its values, and `_check_type`
checks it at load, naming the key, the value, the choices and, for a near miss, the close one.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from nbforget import NbforgetError
from nbforget.languages import VITALITY_BUCKETS, DatasetName, JoshiClass, get_language, resolve_order

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = REPO_ROOT / "params"
DEFAULTS_FILE = PARAMS_DIR / "defaults.yaml"

Bf16Setting = Literal["auto", "on", "off"]  # auto: on where the hardware supports it
EwcMode = Literal["separate", "online"]  # one Fisher per language, or a decayed running Fisher
ReversionWhen = Literal["each", "end"]  # revert after each language, or once at the end
MergeMethod = Literal["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"]
ExpertKind = Literal["language", "family"]  # what one expert is trained on


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
    languages: list[str] = field(default_factory=lambda: ["en-US", "de-DE", "th-TH"])
    orders: list[Any] = field(default_factory=lambda: [1])  # paper order numbers, "random:SEED", or lists
    orders_by_strategy: dict[str, list[Any]] = field(default_factory=dict)  # strategy -> its own orders
    seeds: list[int] = field(default_factory=lambda: [0])
    strategies: list[str] = field(default_factory=lambda: [
        "multi", "mono", "vanilla", "shared_lora", "nonshared_lora",
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
    NOT_RESULT_FIELDS = ("profile", "runs_dir", "data_dir", "strategies", "orders", "orders_by_strategy", "seeds",
                         "vitality_buckets")

    def recorded(self) -> dict:
        """The config as a run folder records it: without where runs and data live (run files hold
        no machine paths; the run folder is where it is)."""
        data = self.to_dict()
        for name in ("runs_dir", "data_dir"):
            data.pop(name, None)
        return data

    def result_settings(self) -> dict:
        """The settings that can change a run's result (see `Strategy.run_identity`)."""
        data = self.to_dict()
        for name in self.NOT_RESULT_FIELDS:
            data.pop(name, None)
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

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
        if isinstance(value, dict) and isinstance(out.get(key), dict) and out[key] and key not in _FREE_DICTS:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_FREE_DICTS = {"layer_weights", "layer_alpha", "vitality_buckets", "orders_by_strategy"}  # user-keyed maps, replaced whole


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NbforgetError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
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


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise NbforgetError(f"params file {path} does not exist; profiles are in {PARAMS_DIR / 'profiles'}")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise NbforgetError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_config(params_file: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults, then the params file (a profile), then overrides; validated into a RunConfig."""
    data = _read_yaml(DEFAULTS_FILE) if DEFAULTS_FILE.exists() else {}
    where = "params/defaults.yaml"
    if params_file is not None:
        path = Path(params_file)
        if not path.is_absolute() and not path.exists():
            path = REPO_ROOT / path
        profile_data = _read_yaml(path)
        _build(RunConfig, _merge(RunConfig().to_dict(), profile_data), str(path))  # name the file in errors
        data = _merge(data, profile_data)
        data.setdefault("profile", path.stem)
        if "profile" not in profile_data:
            data["profile"] = path.stem
        where = str(path)
    if overrides:
        _build(RunConfig, _merge(RunConfig().to_dict(), overrides), "overrides")
        data = _merge(data, overrides)
        where = f"{where} + overrides"
    config = _build(RunConfig, _merge(RunConfig().to_dict(), data), "")
    validate(config, where)
    config.loaded_from = where  # for messages of checks made later (strategy names)
    return config


def validate(config: RunConfig, where: str) -> None:
    """What the types cannot say: relations between settings, and names defined elsewhere."""
    if len(config.languages) < 1:
        raise NbforgetError(f"{where}: languages is empty; list at least one locale")
    if len(set(config.languages)) != len(config.languages):
        raise NbforgetError(f"{where}: languages has duplicates: {config.languages}")
    for index, locale in enumerate(config.languages):
        try:
            get_language(locale)
        except NbforgetError as error:
            raise NbforgetError(f"{error} (in {where}: languages[{index}])") from None
    for index, order in enumerate(config.orders):
        try:
            resolve_order(order, config.languages)
        except NbforgetError as error:
            raise NbforgetError(f"{error} (in {where}: orders[{index}])") from None
    # Strategy names are checked against the registry by `nbforget.strategies.check_names`
    # (the registry sits above this layer and imports torch, which loading a config does not need).
    for strategy, orders in config.orders_by_strategy.items():
        for index, order in enumerate(orders):
            try:
                resolve_order(order, config.languages)
            except NbforgetError as error:
                raise NbforgetError(f"{error} (in {where}: orders_by_strategy.{strategy}[{index}])") from None
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise NbforgetError(f"{where}: train.epochs and train.batch_size must be at least 1")
    if config.model.hidden_size % config.model.num_heads:
        raise NbforgetError(f"{where}: model.hidden_size must be divisible by model.num_heads")
    if not 0.0 < config.strategy.merge.density <= 1.0:
        raise NbforgetError(f"{where}: strategy.merge.density must be in (0, 1]")
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
