"""The one training loop: AdamW, warm-up then linear decay, early stopping on the dev score,
length-grouped batches with dynamic padding, bf16 autocast where it is faster, seeded."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from nbforget.encoding import Encoded, length_grouped_batches
from nbforget.layers import HEAD, parameter_group
from nbforget.models.device import fused_if_supported

def language_seed(seed: int, language: str) -> int:
    """The seed of one language's training: depends on the run seed and the language only, so a
    language trained from the same weights gives the same result at any position of any order."""
    return int(hashlib.sha256(f"{seed}:{language}".encode()).hexdigest()[:8], 16)


def loop_settings(train) -> dict:
    """The arguments of `train_language` that come from the config's ``train`` section as they are."""
    return {name: getattr(train, name) for name in ("epochs", "batch_size", "weight_decay", "warmup_ratio", "patience",
                                                        "head_learning_rate")}


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train_language(
    model,
    train: Encoded,
    dev: Encoded,
    *,
    task,
    dev_score: Callable[[object, Encoded], float],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    patience: int,
    bf16: bool,
    seed: int,
    pad_id: int,
    device: torch.device,
    extra_loss: Callable[[object], torch.Tensor | None] | None = None,
    head_learning_rate: float | None = None,
    progress: bool = True,
    description: str = "training",
) -> dict:
    """Fine-tune `model` on one language; restore the epoch with the best dev score.

    `extra_loss(model)` is the strategies' hook for penalties (L2-SP, EWC); it returns a scalar or
    None. `head_learning_rate`, when set, trains the task head (every parameter outside the
    encoder's embeddings and layers) at its own rate: a freshly initialised head on a pretrained
    encoder learns faster at a higher rate than the encoder can take. Returns a history dict (per-epoch dev score, best epoch, steps, real tokens, seconds).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    parameters = [p for _, p in named]
    groups = [{"params": parameters}]
    if head_learning_rate is not None:
        head = [p for n, p in named if parameter_group(n) == HEAD]
        groups = [{"params": [p for n, p in named if parameter_group(n) != HEAD]},
                  {"params": head, "lr": head_learning_rate}]
        groups = [group for group in groups if group["params"]]
    torch.set_flush_denormal(True)  # denormal optimizer state slows CPU element-wise ops badly
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay, **fused_if_supported(device))
    steps_per_epoch = -(-len(train) // batch_size)
    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, int(total * warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    lengths = [len(ids) for ids in train.input_ids]
    best_score, best_epoch, best_state, waited = float("-inf"), -1, None, 0
    history: dict = {"dev": [], "loss": [], "steps": 0, "tokens": 0}
    started = time.perf_counter()
    bar = tqdm(total=total, desc=description, disable=not progress, leave=False)
    for epoch in range(epochs):
        model.train()
        epoch_loss, batches = 0.0, 0
        for indices in length_grouped_batches(lengths, batch_size, generator):
            batch = {k: v.to(device) for k, v in task.collate(train, indices, pad_id=pad_id).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            penalty = extra_loss(model) if extra_loss else None
            if penalty is not None:
                loss = loss + penalty
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += loss.item()
            batches += 1
            history["steps"] += 1
            history["tokens"] += int(batch["attention_mask"].sum())
            bar.update(1)
        score = dev_score(model, dev) if len(dev) else -epoch_loss  # no dev split: lowest loss wins
        history["dev"].append(round(score, 6))
        history["loss"].append(round(epoch_loss / max(1, batches), 6))
        bar.set_postfix(epoch=epoch + 1, dev=f"{score:.3f}")
        if score > best_score:
            best_score, best_epoch, best_state, waited = score, epoch, trainable_state(model), 0
        else:
            waited += 1
            if waited >= patience:
                break
    bar.close()
    if best_state is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in best_state:
                    parameter.copy_(best_state[name])
    history.update(best_epoch=best_epoch, best_dev=best_score, seconds=round(time.perf_counter() - started, 3))
    return history
