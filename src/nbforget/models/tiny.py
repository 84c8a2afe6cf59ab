"""The tiny encoder, built here from scratch.

``tiny`` is an XLM-R-architecture encoder built here: a unigram (sentencepiece-style) tokenizer
trained on the pretraining text of the configured languages, then masked-LM pretraining for a
bounded budget. It is built once and cached under ``data/models/tiny-<hash>`` where the hash covers
the model settings, the languages and the text; the same seed gives the same weights.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nbforget import NbforgetError
from nbforget.config import ModelConfig
from nbforget.data import pretraining_text
from nbforget.models.device import default_device, fused_if_supported, use_bf16

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, XLM-R's order


def _tiny_key(config: ModelConfig, languages: list[str], texts: dict[str, list[str]]) -> str:
    digest = hashlib.sha256()
    settings = {k: v for k, v in vars(config).items() if k not in ("name", "freeze_embeddings", "prune_vocabulary")}
    digest.update(json.dumps({"settings": settings, "languages": sorted(languages)}, sort_keys=True).encode())
    for language in sorted(texts):
        for line in texts[language]:
            digest.update(line.encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()[:12]


def _sample_texts(texts: dict[str, list[str]], limit: int) -> dict[str, list[str]]:
    return {language: lines[:limit] for language, lines in sorted(texts.items())}


def train_tokenizer(lines: list[str], vocab_size: int):
    """A unigram tokenizer with XLM-R's special tokens, post-processor and normalisation."""
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = SentencePieceUnigramTokenizer()
    tokenizer.train_from_iterator(
        lines, vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer._tokenizer,
        bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )
    return fast


def build_tiny(config: ModelConfig, languages: list[str], data_dir: Path, *, progress: bool = True) -> Path:
    """Build (or reuse) the tiny pretrained encoder for these languages; returns its folder."""
    texts = _sample_texts(pretraining_text(languages, data_dir), config.pretrain_max_sentences_per_language)
    key = _tiny_key(config, languages, texts)
    folder = Path(data_dir) / "models" / f"tiny-{key}"
    if (folder / "pretraining.json").exists():
        return folder
    empty = [language for language, lines in texts.items() if not lines]
    if empty:
        raise NbforgetError(f"no pretraining text for {empty} in {data_dir}; run `nbforget data` first")
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Runs started together (`--workers 2`) build it once: the others wait here, then reuse it.
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / "pretraining.json").exists():
            return folder
        return _build_tiny(config, texts, folder, languages, progress=progress)


def _build_tiny(config: ModelConfig, texts: dict[str, list[str]], folder: Path, languages: list[str], *,
                progress: bool) -> Path:
    started = time.perf_counter()
    lines = [line for language in sorted(texts) for line in texts[language]]
    tokenizer = train_tokenizer(lines, config.vocab_size)
    model, history = _pretrain_mlm(config, tokenizer, lines, progress=progress)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    info = {
        "languages": sorted(languages), "sentences": len(lines), "settings": vars(config),
        "loss_history": history, "seconds": round(time.perf_counter() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (staging / "pretraining.json").write_text(json.dumps(info, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)  # the folder appears complete or not at all
    return folder


def _pretrain_mlm(config: ModelConfig, tokenizer, lines: list[str], *, progress: bool):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model_config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_length + 2 + 1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        type_vocab_size=1,
    )
    model = XLMRobertaForMaskedLM(model_config)
    device = default_device()
    model.to(device)
    encoded = tokenizer(lines, truncation=True, max_length=config.max_length, add_special_tokens=True)["input_ids"]
    encoded = [ids for ids in encoded if len(ids) > 3]
    steps_per_epoch = math.ceil(len(encoded) / config.pretrain_batch_size)
    total_steps = max(1, int(steps_per_epoch * config.pretrain_epochs))
    torch.set_flush_denormal(True)  # denormal optimizer state slows CPU element-wise ops badly
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_learning_rate, weight_decay=0.01,
                                  **fused_if_supported(device))
    warmup = max(1, total_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    bf16 = use_bf16("auto", device)
    special = torch.tensor([0, 1, 2, 3, 4])
    history = []
    model.train()
    bar = tqdm(total=total_steps, desc="pretraining tiny encoder (MLM)", disable=not progress)
    step = 0
    while step < total_steps:
        permutation = torch.randperm(len(encoded), generator=generator).tolist()
        for start in range(0, len(permutation), config.pretrain_batch_size):
            if step >= total_steps:
                break
            batch = [encoded[i] for i in permutation[start:start + config.pretrain_batch_size]]
            input_ids = _pad(batch, 1)
            labels = input_ids.clone()
            # BERT masking: 15% of real tokens; of those 80% <mask>, 10% random, 10% kept.
            candidate = ~torch.isin(input_ids, special)
            chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & candidate
            labels[~chosen] = -100
            roll = torch.rand(input_ids.shape, generator=generator)
            input_ids = input_ids.clone()
            input_ids[chosen & (roll < 0.8)] = 4
            random_tokens = torch.randint(5, len(tokenizer), input_ids.shape, generator=generator)
            replace = chosen & (roll >= 0.8) & (roll < 0.9)
            input_ids[replace] = random_tokens[replace]
            attention = (torch.tensor([[1] * len(ids) + [0] * (input_ids.shape[1] - len(ids)) for ids in batch]))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                hidden = model.roberta(input_ids=input_ids.to(device), attention_mask=attention.to(device))[0]
                # Vocabulary logits only where a token was masked: the output layer is the
                # largest matmul of a small encoder, and the other 85% of positions carry no loss.
                labels = labels.to(device)
                logits = model.lm_head(hidden[labels != -100])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[labels != -100])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 50 == 0 or step == total_steps:
                history.append({"step": step, "loss": round(float(loss), 4)})
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.to("cpu")
    return model, history


def _pad(sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    return torch.tensor([list(s) + [pad_id] * (width - len(s)) for s in sequences])
