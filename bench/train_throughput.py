"""Training throughput: this project's loop against the Hugging Face Trainer, same model, same data.

Both fine-tune the same randomly initialised encoder of the embedded profile's size (XLM-R
architecture, hidden 192, 4 layers, 4 heads, feed-forward 768, a unigram vocabulary of 8000
pieces trained on the languages' pretraining text) on the SIB-200 train split of a few languages,
for the same epochs and batch size, with no evaluation:

- ours: `nbforget.train.train_language` as the engine calls it: bf16 autocast where the hardware
  supports it (``--bf16 auto``), length-grouped batches, dynamic padding;
- Trainer: set up as a typical user would: ``DataCollatorWithPadding``, fp32, the default random
  sampler, ``report_to=[]``, ``save_strategy="no"``, ``use_cpu`` without a GPU.

Throughput counts real (non-padding) tokens. Model FLOPs count what the model needs for those
tokens, padding excluded (the PaLM paper's definition, appendix B), for a sentence of s tokens:

    6 * N * s  +  12 * L * d * s**2  +  6 * H

N: parameters of the transformer layers (embeddings and head excluded; an embedding lookup is no
matrix product), L layers of width d (the 12 L d s^2 term is QK^T and attention-times-V, forward
and backward), H: parameters of the classification head, applied once per sentence. The factor 6
is 2 FLOPs per multiply-add times 3 (forward, and backward for activations and for weights).
Model-FLOP utilisation (MFU) divides the achieved model FLOPs per second by this machine's matmul
peak, measured in the same run with large square ``torch.matmul`` products (2 n^3 FLOPs each).

Run: ``HF_HUB_OFFLINE=1 python bench/train_throughput.py`` (5 to 10 minutes on 2 idle cores), or
``--quick`` for a smoke run of a minute. ``nbforget bench`` runs it with the defaults.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from nbforget.config import REPO_ROOT  # noqa: E402
from nbforget.data import load_task, pretraining_text  # noqa: E402
from nbforget.data.types import CLASSIFICATION  # noqa: E402
from nbforget.models import default_device, train_tokenizer, use_bf16  # noqa: E402
from nbforget.encoding import Encoded, encode, length_grouped_batches  # noqa: E402
from nbforget.tasks.classification import SentenceClassification  # noqa: E402
from nbforget.train import train_language  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run by `nbforget bench` (runpy)
from _measure import load_average, machine_line, model_flops, padding_share, time_trainer, update_peaks  # noqa: E402

LANGUAGES = ["en-US", "de-DE", "ru-RU", "ar-SA", "zh-CN", "th-TH"]  # six scripts' worth of lengths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 languages, 96 sentences each")
    parser.add_argument("--languages", nargs="+", default=LANGUAGES)
    parser.add_argument("--max-train", type=int, default=300, help="sentences per language (0: all 701)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the fastest is reported")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default="auto", help="our loop's autocast")
    parser.add_argument("--fp32-too", action="store_true", help="also time our loop without bf16")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.quick:
        args.languages, args.max_train, args.rounds = args.languages[:2], 96, 1
    return args


# ----------------------------------------------------------------------------- model and data


def build_data(languages: list[str], max_train: int | None, max_length: int = 64):
    data_dir = REPO_ROOT / "data"
    texts = pretraining_text(languages, data_dir)
    tokenizer = train_tokenizer([line for language in languages for line in texts[language][:3000]], 8000)
    tasks = [load_task("sib200", language, data_dir) for language in languages]
    labels = sorted({label for task in tasks for label in task.labels})
    label_ids = {label: i for i, label in enumerate(labels)}
    parts = [encode(task.splits["train"][:max_train or None], tokenizer, kind=CLASSIFICATION, label_ids=label_ids,
                    max_length=max_length) for task in tasks]
    train = Encoded([i for p in parts for i in p.input_ids], [x for p in parts for x in p.labels],
                    [g for p in parts for g in p.gold], sum(p.real_tokens for p in parts))
    return tokenizer, train, len(labels)


def build_model(vocab_size: int, num_labels: int, max_length: int = 64):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=192, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=768, max_position_embeddings=max_length + 3, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, type_vocab_size=1, num_labels=num_labels,
    )
    return XLMRobertaForSequenceClassification(config)


# ----------------------------------------------------------------------------- the two loops


def time_ours(model, train: Encoded, *, epochs: int, batch_size: int, bf16: bool, pad_id: int, device) -> float:
    history = train_language(
        model, train, Encoded([], [], [], 0), task=SentenceClassification(("topic",)), dev_score=lambda m, d: 0.0, epochs=epochs,
        batch_size=batch_size, learning_rate=5e-5, weight_decay=0.01, warmup_ratio=0.06, patience=epochs,
        bf16=bf16, seed=0, pad_id=pad_id, device=device, progress=False,
    )
    assert history["tokens"] == train.real_tokens * epochs
    return history["seconds"]


def time_sib_trainer(model, train: Encoded, tokenizer, *, epochs: int, batch_size: int, device) -> float:
    from transformers import DataCollatorWithPadding

    rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": label}
            for ids, label in zip(train.input_ids, train.labels)]
    return time_trainer(model, rows, DataCollatorWithPadding(tokenizer), epochs=epochs, batch_size=batch_size,
                        learning_rate=5e-5, weight_decay=0.01, warmup_ratio=0.06, device=device)


# ----------------------------------------------------------------------------- report


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    bf16 = use_bf16(args.bf16, device)
    load = load_average()
    print(machine_line(device))

    tokenizer, train, num_labels = build_data(args.languages, args.max_train)
    lengths = [len(ids) for ids in train.input_ids]
    template = build_model(len(tokenizer), num_labels)
    flops = model_flops(template, lengths) * args.epochs
    tokens = train.real_tokens * args.epochs
    grouped = length_grouped_batches(lengths, args.batch_size, torch.Generator().manual_seed(0))
    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [shuffled[i:i + args.batch_size] for i in range(0, len(shuffled), args.batch_size)]
    print(f"data: {len(train)} sentences of {', '.join(args.languages)}; {train.real_tokens} real tokens a pass, "
          f"mean length {statistics.mean(lengths):.1f}; padding share: length-grouped "
          f"{padding_share(lengths, grouped):.1%}, random batches {padding_share(lengths, random_batches):.1%}")
    print(f"model: {sum(p.numel() for p in template.parameters()) / 1e6:.2f} M parameters, "
          f"{sum(p.numel() for p in template.roberta.encoder.parameters()) / 1e6:.2f} M in the layers; "
          f"{flops / tokens / 1e6:.1f} MFLOP per real token (training)")

    peaks: dict[str, float] = {}
    update_peaks(peaks, args.quick)

    pad_id = tokenizer.pad_token_id
    contenders = {f"ours ({'bf16' if bf16 else 'fp32'})": lambda m: time_ours(
        m, train, epochs=args.epochs, batch_size=args.batch_size, bf16=bf16, pad_id=pad_id, device=device)}
    if args.fp32_too and bf16:
        contenders["ours (fp32)"] = lambda m: time_ours(
            m, train, epochs=args.epochs, batch_size=args.batch_size, bf16=False, pad_id=pad_id, device=device)
    contenders["Trainer (fp32)"] = lambda m: time_sib_trainer(
        m, train, tokenizer, epochs=args.epochs, batch_size=args.batch_size, device=device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    # Alternate the contenders, and keep each one's fastest round: other processes only ever add
    # time, and the first round also pays for creating the kernels of each new batch shape.
    for round_index in range(args.rounds):
        for name, run in contenders.items():
            times[name].append(run(copy.deepcopy(template).to(device)))
            print(f"  round {round_index + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
        update_peaks(peaks, args.quick)
    print(f"matmul peak (best of the run): bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s, "
          f"fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s")

    print(f"\n{'loop':<16} {'seconds':>8} {'tokens/s':>10} {'GFLOP/s':>8} {'MFU bf16':>9} {'MFU fp32':>9}")
    rates = {}
    for name, values in times.items():
        elapsed = min(values)
        rates[name] = tokens / elapsed
        achieved = flops / elapsed
        print(f"{name:<16} {elapsed:>8.1f} {rates[name]:>10.0f} {achieved / 1e9:>8.1f} "
              f"{achieved / peaks['bf16']:>9.1%} {achieved / peaks['fp32']:>9.1%}")
    ours, trainer = next(iter(rates.values())), rates["Trainer (fp32)"]
    print(f"\nspeed-up of our loop over the Trainer: {ours / trainer:.2f}x (target: 2x)")
    print(f"load average before {load:.2f}, after {load_average():.2f}")


if __name__ == "__main__":
    main()
