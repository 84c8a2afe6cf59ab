"""What the benchmarks share: the machine line, model FLOPs, the matmul peak, and the Trainer's timing.

Not a benchmark itself (``nbforget bench`` skips modules whose name starts with an underscore); the
scripts next to it import it as ``_measure``.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time

import torch


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line(device) -> str:
    return (f"machine: {platform.machine()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, "
            f"device {device}, load average {load_average():.2f}; torch {torch.__version__}")


def model_flops(model, lengths: list[int], *, head_per_token: bool = False) -> float:
    """Training FLOPs the model needs for these sentences, one epoch, padding excluded (the PaLM
    paper's definition, appendix B): for a sentence of s tokens

        6 * N * s  +  12 * L * d * s**2  +  6 * H * (s if the head tags every token else 1)

    N: parameters of the transformer layers (embeddings and head excluded: an embedding lookup is
    no matrix product), L layers of width d (QK^T and attention-times-V, forward and backward), H:
    the task head's parameters."""
    config = model.config
    layers = sum(p.numel() for p in model.base_model.encoder.parameters())
    head = sum(p.numel() for p in model.classifier.parameters())
    attention = 12 * config.num_hidden_layers * config.hidden_size
    return float(sum(6 * layers * s + attention * s * s + 6 * head * (s if head_per_token else 1) for s in lengths))


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1 - sum(lengths) / padded


def matmul_peak(dtype: torch.dtype, size: int, seconds: float) -> float:
    """FLOP/s of repeated size x size matrix products (the best of five timed bursts)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    t = time.perf_counter()
    torch.matmul(a, b)
    repeats = max(1, int(seconds / 5 / max(time.perf_counter() - t, 1e-6)))
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            torch.matmul(a, b)
        best = max(best, 2 * size ** 3 * repeats / (time.perf_counter() - started))
    return best


def update_peaks(peaks: dict[str, float], quick: bool) -> None:
    """Keep the best matmul rate seen for each precision. Measured between the training rounds too,
    so that the peak gets the same chances of a quiet machine as the loops it is compared with."""
    for size in (1024,) if quick else (1024, 2048):
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            peaks[name] = max(peaks.get(name, 0.0), matmul_peak(dtype, size, 1.0 if quick else 2.0))


def time_trainer(model, rows: list[dict], collator, *, epochs: int, batch_size: int, learning_rate: float,
                 weight_decay: float, warmup_ratio: float, device, bf16: bool = False,
                 group_by_length: bool = False) -> float:
    """Seconds `transformers.Trainer.train()` takes on `rows` (dicts of input_ids, attention_mask,
    labels): no evaluation, no saving, no reporting, everything else at the Trainer's defaults
    unless `bf16` (autocast) or `group_by_length` (its ``LengthGroupedSampler``) is asked for."""
    from transformers import PrinterCallback, Trainer, TrainingArguments
    from transformers.utils import logging

    logging.set_verbosity_error()
    extra = {"bf16": True} if bf16 else {}
    if group_by_length:
        extra["train_sampling_strategy"] = "group_by_length"  # `group_by_length=True` before transformers 5
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output, per_device_train_batch_size=batch_size, num_train_epochs=epochs,
            learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_ratio, eval_strategy="no",
            save_strategy="no", report_to=[], use_cpu=device.type == "cpu", disable_tqdm=True, **extra,
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=rows, data_collator=collator)
        trainer.remove_callback(PrinterCallback)  # the end-of-training metrics line
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started
