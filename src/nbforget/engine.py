"""Run one strategy over one language order and seed, step by step, resumably.

``run_strategy(config, name, order=..., seed=...)`` returns the run's folder (`nbforget.runs`):
a complete run is returned as it is, an incomplete one resumes from its last completed step.
Every step: the strategy's ``before_language`` hook, the one training loop (`nbforget.train`)
on the step's data with the strategy's ``extra_loss``, ``after_language``, then a row of the score
matrix (`nbforget.evaluate`; held-out languages last, never trained), per-layer drift
(`nbforget.layers`), and one commit to the run folder.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nbforget.config import RunConfig, getattr_dotted
from nbforget.evaluate import own_scores, score_records, score_row
from nbforget.languages import get_language
from nbforget.layers import encoder_weights, parameter_drift
from nbforget.models import count_parameters, default_device, use_bf16
from nbforget.strategies import RunContext, check_names, get_strategy, run_store, strategy_config, strategy_settings
from nbforget.tasks import prepare
from nbforget.train import language_seed, loop_settings, train_language


def run_strategy(config: RunConfig, strategy: str, *, order=None, seed: int | None = None,
                 progress: bool = True, stop_after: int | None = None) -> Path:
    """Run (or resume, or skip if complete) one strategy; returns the run directory.

    `stop_after` ends the process's work after that many new steps (for tests of resuming).
    """
    order_spec = config.orders[0] if order is None else order
    seed = config.seeds[0] if seed is None else seed
    config = strategy_config(check_names(config, sweep=False), strategy)  # its by_strategy settings applied
    store = run_store(config, strategy, order_spec, seed)
    with store.writer(announce=print if progress else (lambda message: None)):
        if store.status != "complete":
            _run(config, strategy, order_spec, seed, store, progress, stop_after)
    return store.path


def _run(config: RunConfig, strategy: str, order_spec, seed: int, store, progress: bool, stop_after) -> None:
    languages, held_out = tuple(store.identity["order"]), tuple(config.held_out_languages)
    evaluated = languages + held_out  # the score matrix's columns
    prepared, device = prepare(config, progress=progress), default_device()
    bf16, splits = use_bf16(config.train.bf16, device), ["test", "dev"] if config.train.evaluate_dev else ["test"]
    families = {language: get_language(language).family for language in evaluated}
    cls, taken = get_strategy(strategy), strategy_settings(config, strategy)  # its by_strategy settings
    runner = cls(RunContext(config, prepared.task, prepared.base_source, seed, device, languages, families, held_out))
    swept = {key: getattr_dotted(config, key) for keys in config.sweep.values() for key in keys if cls.reads(key)}
    store.start({"strategy": strategy, "order_spec": order_spec, "order": list(languages), "seed": seed,
                 "config": config.recorded(), **({"held_out": list(held_out)} if held_out else {}),
                 **({"by_strategy": taken} if taken else {}), **({"swept": swept} if swept else {})})
    scoring = dict(batch_size=config.train.eval_batch_size, device=device, bf16=bf16)
    try:
        started, state = time.perf_counter(), store.progress()
        base_model = runner.context.new_model()
        base_weights = {k: v.clone() for k, v in encoder_weights(base_model).items()}
        if state["base"] is None:
            state["base"] = score_records(order_spec, -1, "", score_row(
                prepared, lambda language: base_model, evaluated, splits, reuse={}, **scoring))
        del base_model
        steps, done = runner.steps(languages), [record["step"] for record in state["steps"]]
        model = runner.initial_model()
        if done and len(done) < len(steps):  # a finished record needs no model, only its finish
            model = runner.restore(model, [lang for s in state["steps"] for lang in s["languages"]],
                                   store.load_checkpoint(), where=store.path)
        new_steps = 0
        for step in tqdm(steps, desc=f"{strategy} order {order_spec} seed {seed}", disable=not progress):
            if step.index in done:
                continue
            if stop_after is not None and new_steps >= stop_after:
                return
            model = runner.before_language(model, step)
            trainable = count_parameters(model)
            train_data = prepared.step_data(step.languages, "train")
            history = train_language(
                model, train_data, prepared.step_data(step.languages, "dev"), task=prepared.task,
                dev_score=lambda m, data: prepared.task.score(m, data, pad_id=prepared.tokenizer.pad_token_id,
                                                              **scoring)[prepared.task.primary_metric],
                learning_rate=runner.learning_rate, seed=language_seed(seed, step.label), bf16=bf16, device=device,
                pad_id=prepared.tokenizer.pad_token_id, extra_loss=runner.extra_loss, progress=progress,
                description=f"train {step.label}", **loop_settings(config.train))
            model = runner.after_language(model, step, train_data)
            is_last = step.index == steps[-1].index
            model = runner.finish(model) if is_last else model
            row = score_row(prepared, lambda language: runner.model_for(model, language, step), evaluated, splits,
                            reuse=own_scores(state["steps"]), **scoring)
            state["steps"].append({
                "step": step.index, "languages": list(step.languages),
                "scores": score_records(order_spec, step.index, step.label, row), "history": history,
                "drift": parameter_drift(runner.drift_model(model), base_weights) if model is not None else [],
                "trainable_parameters": trainable, "strategy": runner.step_record(model, step)})
            store.commit_step(state, None if is_last else runner.checkpoint(model))
            new_steps += 1
        execution = {"bf16": bf16, "device": str(device), "torch_threads": torch.get_num_threads()}
        store.finish(store.result_record(
            strategy=strategy, profile=config.profile, order=list(languages), held_out=list(held_out), seed=seed,
            execution=execution, metric=prepared.task.primary_metric, chance=prepared.chance, started=started,
            data_dir=config.data_path, base_model=prepared.base_source))
    except Exception as error:  # recorded, then raised: completed steps stay and resume
        store.fail(error)
        raise
