"""Run one strategy over one language order and seed, step by step, resumably.

This is the Python API the notebooks and ``nbforget run`` call: ``run_strategy(config, name,
order=..., seed=...)`` returns the run's folder (see `nbforget.runs`), skipping a complete run
and resuming an incomplete one from its last completed language step.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nbforget import NbforgetError, metrics
from nbforget.config import REPO_ROOT, RunConfig
from nbforget.data.types import CLASSIFICATION, Example, LanguageTask
from nbforget.evaluate import PRIMARY_METRIC, score_split
from nbforget.runs import RunStore, base_scores, provenance, score_matrix
from nbforget.strategies import get_strategy
from nbforget.strategies.base import RunContext, Step
from nbforget.train import Encoded, encode, train_language


def language_seed(seed: int, language: str) -> int:
    """The seed of one language's training: depends on the run seed and the language only, so a
    language trained from the same weights gives the same result at any position of any order."""
    return int(hashlib.sha256(f"{seed}:{language}".encode()).hexdigest()[:8], 16)


@dataclass
class Prepared:
    """Tasks loaded and tokenized once for a config: shared by every strategy of a process."""

    tasks: dict[str, LanguageTask]
    kind: str
    labels: tuple[str, ...]
    base_source: str
    tokenizer: object
    encoded: dict[tuple[str, str], Encoded]

    @property
    def chance(self) -> float:
        return 1.0 / len(self.labels) if self.kind == CLASSIFICATION else 0.0


_PREPARED: dict[str, Prepared] = {}


def prepare(config: RunConfig, *, progress: bool = True) -> Prepared:
    from nbforget.data import load_task, require_nonempty
    from nbforget.models import base_model_dir, load_tokenizer

    key = hashlib.sha256(repr((config.dataset, config.languages, config.model, config.train.max_train_examples,
                               config.train.max_eval_examples, str(config.data_path))).encode()).hexdigest()
    if key in _PREPARED:
        return _PREPARED[key]
    tasks = {}
    for language in config.languages:
        task = load_task(config.dataset, language, config.data_path)
        require_nonempty(task, ("train", "test"))
        tasks[language] = _limit(task, config.train.max_train_examples, config.train.max_eval_examples)
    kinds = {task.kind for task in tasks.values()}
    kind = kinds.pop()
    labels = _union_labels(tasks.values(), kind)
    source = base_model_dir(config.model, list(config.languages), config.data_path, dataset=config.dataset,
                            progress=progress)
    tokenizer = load_tokenizer(source)
    label_ids = {label: i for i, label in enumerate(labels)}
    encoded = {}
    for language, task in tasks.items():
        for split, examples in task.splits.items():
            encoded[(language, split)] = encode(examples, tokenizer, kind=kind, label_ids=label_ids,
                                                max_length=config.model.max_length)
    prepared = Prepared(tasks, kind, labels, source, tokenizer, encoded)
    _PREPARED[key] = prepared
    return prepared


def _limit(task: LanguageTask, train: int | None, evaluation: int | None) -> LanguageTask:
    """Keep evenly spaced examples of each split: deterministic, and a file sorted by label (SIB-200's
    test split is) still gives every label, where its first N examples would all share one."""
    if train is None and evaluation is None:
        return task

    def spaced(examples: list[Example], limit: int | None) -> list[Example]:
        if not limit or limit >= len(examples):
            return examples
        return [examples[i * len(examples) // limit] for i in range(limit)]

    splits = {split: spaced(examples, train if split == "train" else evaluation)
              for split, examples in task.splits.items()}
    return LanguageTask(task.dataset, task.language, task.kind, splits, task.labels, task.source_code,
                        task.intents, dict(task.notes))


def _union_labels(tasks, kind: str) -> tuple[str, ...]:
    labels = sorted({label for task in tasks for label in task.labels})
    if kind != CLASSIFICATION and "O" in labels:
        labels = ["O"] + [label for label in labels if label != "O"]  # "O" is id 0 (see evaluate.predict)
    return tuple(labels)


def _concat(parts: list[Encoded]) -> Encoded:
    return Encoded(
        [ids for p in parts for ids in p.input_ids], [lab for p in parts for lab in p.labels],
        [g for p in parts for g in p.gold], sum(p.real_tokens for p in parts),
    )


LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def layer_group(name: str) -> str | None:
    """Which layer a parameter belongs to: ``embeddings``, ``layer.N``, or None (head, pooler)."""
    match = LAYER.search(name)
    if match:
        return f"layer.{match.group(1)}"
    if ".embeddings." in f".{name}":
        return "embeddings"
    return None


def encoder_weights(model) -> dict[str, torch.Tensor]:
    """Effective encoder weights by canonical name; LoRA updates (B A scale) added where present."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        base = model.get_base_model()
        weights = {}
        for name, parameter in base.named_parameters():
            if "lora_" in name or "modules_to_save" in name or "original_module" in name:
                continue
            weights[name.replace(".base_layer", "")] = parameter.detach()
        for name, module in base.named_modules():
            if hasattr(module, "lora_A") and module.active_adapters:
                adapter = module.active_adapters[0]
                if adapter in module.lora_A:
                    delta = module.lora_B[adapter].weight @ module.lora_A[adapter].weight * module.scaling[adapter]
                    key = f"{name}.weight"
                    weights[key] = weights[key] + delta.detach()
        return {k: v for k, v in weights.items() if layer_group(k)}
    return {n: p.detach() for n, p in model.named_parameters() if layer_group(n)}


def parameter_drift(model, base: dict[str, torch.Tensor]) -> list[dict]:
    """Per layer: ||theta - theta_base|| / ||theta_base|| over all its weights."""
    current = encoder_weights(model)
    sums: dict[str, list[float]] = {}
    for name, weight in base.items():
        if name not in current:
            continue
        group = layer_group(name)
        entry = sums.setdefault(group, [0.0, 0.0])
        entry[0] += float((current[name].float() - weight.float()).pow(2).sum())
        entry[1] += float(weight.float().pow(2).sum())
    return [{"layer": g, "relative_drift": (d ** 0.5) / max(b ** 0.5, 1e-12)} for g, (d, b) in sorted(sums.items())]


def run_strategy(config: RunConfig, strategy: str, *, order=None, seed: int | None = None,
                 progress: bool = True, stop_after: int | None = None) -> Path:
    """Run (or resume, or skip if complete) one strategy; returns the run directory.

    `stop_after` ends the process's work after that many new steps (for tests of resuming).
    """
    from nbforget.languages import get_language, resolve_order
    from nbforget.models import default_device, use_bf16

    strategy_class = get_strategy(strategy)
    order_spec = config.orders[0] if order is None else order
    seed = config.seeds[0] if seed is None else seed
    resolved = tuple(resolve_order(order_spec, config.languages))
    store = RunStore(config.runs_path, config.profile, strategy, order_spec, seed)
    if store.status == "complete":
        return store.path
    prepared = prepare(config, progress=progress)
    device = default_device()
    bf16 = use_bf16(config.train.bf16, device)
    context = RunContext(config, prepared.kind, prepared.labels, prepared.base_source, seed, device, resolved,
                         {language: get_language(language).family for language in config.languages})
    runner = strategy_class(context)
    store.start({"strategy": strategy, "order_spec": order_spec, "order": list(resolved), "seed": seed,
                 "config": config.to_dict()})
    try:
        metric = PRIMARY_METRIC[prepared.kind]
        pad_id = prepared.tokenizer.pad_token_id
        split_names = ["test", "dev"] if config.train.evaluate_dev else ["test"]

        def score(model, language: str, split: str) -> dict:
            return score_split(model, prepared.encoded[(language, split)], kind=prepared.kind, labels=prepared.labels,
                               batch_size=config.train.eval_batch_size, pad_id=pad_id, device=device, bf16=bf16)

        def rows(step_index: int, trained: str, scores: dict[tuple[str, str], dict]) -> list[dict]:
            return [{"order": str(order_spec), "step": step_index, "trained_language": trained, "eval_language": lang,
                     "split": split, "metric": name, "value": value}
                    for (lang, split), values in scores.items() for name, value in values.items()]

        started = time.perf_counter()
        state = store.progress()
        base_model = context.new_model()
        base_weights = {k: v.clone() for k, v in encoder_weights(base_model).items()}
        if state["base"] is None:
            base_row = {(lang, split): score(base_model, lang, split) for lang in resolved for split in split_names}
            state["base"] = rows(-1, "", base_row)
        del base_model
        steps = runner.steps(resolved)
        done = [s["step"] for s in state["steps"]]
        model = runner.initial_model()
        if done:
            trained = [lang for s in state["steps"] for lang in s["languages"]]
            model = runner.prepare_resume(model, trained)
            checkpoint = store.load_checkpoint()
            if checkpoint is not None:
                own = {k: v for k, v in checkpoint.items() if not k.startswith("strategy::")}
                missing, unexpected = model.load_state_dict(own, strict=False)
                if unexpected:
                    raise NbforgetError(f"checkpoint of {store.path} does not fit the model: {unexpected[:3]}")
                runner.load_state({k.removeprefix("strategy::"): v for k, v in checkpoint.items()
                                   if k.startswith("strategy::")})
        own_scores: dict[tuple[str, str], dict] = {}
        for record in state["steps"]:
            for row in record["scores"]:
                if row["eval_language"] in record["languages"]:
                    own_scores.setdefault((row["eval_language"], row["split"]), {})[row["metric"]] = row["value"]
        new_steps = 0
        bar = tqdm(steps, desc=f"{strategy} order {order_spec} seed {seed}", disable=not progress)
        for step in bar:
            if step.index in done:
                continue
            if stop_after is not None and new_steps >= stop_after:
                bar.close()
                return store.path
            bar.set_postfix(language=step.label)
            model = runner.before_language(model, step)
            train_data = _concat([prepared.encoded[(lang, "train")] for lang in step.languages])
            dev_data = _concat([prepared.encoded[(lang, "dev")] for lang in step.languages])
            runner.train_data = train_data  # for hooks that need the step's data (EWC's Fisher in after_language)

            def dev_score(m, data):
                return score_split(m, data, kind=prepared.kind, labels=prepared.labels,
                                   batch_size=config.train.eval_batch_size, pad_id=pad_id, device=device,
                                   bf16=bf16)[metric]

            history = train_language(
                model, train_data, dev_data, kind=prepared.kind, dev_score=dev_score, epochs=config.train.epochs,
                batch_size=config.train.batch_size, learning_rate=runner.learning_rate,
                weight_decay=config.train.weight_decay, warmup_ratio=config.train.warmup_ratio,
                patience=config.train.patience, bf16=bf16, seed=language_seed(seed, step.label), pad_id=pad_id,
                device=device, extra_loss=runner.extra_loss, progress=progress, description=f"train {step.label}",
            )
            model = runner.after_language(model, step)
            is_last = step.index == steps[-1].index
            if is_last:
                model = runner.finish(model)
            row_scores = {}
            for lang in resolved:
                for split in split_names:
                    evaluator = runner.model_for(model, lang, step)
                    row_scores[(lang, split)] = own_scores[(lang, split)] if evaluator is None else score(evaluator, lang, split)
                    if lang in step.languages:
                        own_scores[(lang, split)] = row_scores[(lang, split)]
            drift = parameter_drift(runner.drift_model(model), base_weights) if model is not None else []
            state["steps"].append({
                "step": step.index, "languages": list(step.languages), "scores": rows(step.index, step.label, row_scores),
                "history": history, "drift": drift, "trainable_parameters": runner.trainable_counts.get(step.label),
            })
            checkpoint = None
            if runner.keeps_checkpoint and not is_last:
                checkpoint = {k: v for k, v in model.state_dict().items()}
                checkpoint.update({f"strategy::{k}": v for k, v in runner.state().items()})
            store.commit_step(state, checkpoint)
            new_steps += 1
        bar.close()
        store.finish(_result(store, config, runner, resolved, prepared, metric, started, bf16, device))
    except Exception as error:  # recorded, then raised: completed steps stay and resume
        store.fail(error)
        raise
    return store.path


def _result(store, config, runner, order, prepared, metric, started, bf16, device) -> dict:
    scores = store.scores()
    matrix = score_matrix(scores, list(order), metric=metric)
    base = base_scores(scores, list(order), metric=metric)
    summary = {"final_average": float(np.nanmean(matrix[-1])), "chance": prepared.chance, "metric": metric}
    if matrix.shape[0] == matrix.shape[1] and matrix.shape[0] > 1:
        summary.update(cbt=metrics.cbt(matrix), cft=metrics.cft(matrix),
                       forgetting=metrics.forgetting(matrix, reference="learned"))
        if base is not None:
            summary["fwt"] = metrics.fwt(matrix, base)
    progress = store.progress()
    # Steps completed by an earlier process of a resumed run are known from their records only.
    recorded = {Step(s["step"], tuple(s["languages"])).label: s["trainable_parameters"] for s in progress["steps"]
                if s.get("trainable_parameters") is not None}
    counts = {**recorded, **runner.trainable_counts}
    return {
        "strategy": runner.name, "profile": config.profile, "order": list(order), "seed": runner.context.seed,
        "metrics": summary,
        "trainable_parameters": {"per_step": counts, "max_per_step": max(counts.values()) if counts else 0,
                                 "total": int(sum(counts.values()))},
        "timings": {"seconds": round(time.perf_counter() - started, 2),
                    "train_seconds": sum(s["history"]["seconds"] for s in progress["steps"]),
                    "train_tokens": sum(s["history"]["tokens"] for s in progress["steps"]),
                    "bf16": bf16, "device": str(device),
                    # results are reproducible for a given thread count; another count changes the
                    # floating-point reductions, and training carries the difference on
                    "torch_threads": torch.get_num_threads()},
        "base_model": prepared.base_source, **provenance(REPO_ROOT),
    }
