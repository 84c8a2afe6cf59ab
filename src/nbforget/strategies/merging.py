"""Experts trained apart from the base weights (study 2): model merging and language-family experts.

The merge math is pure functions on task vectors: dicts of tensors holding an expert's *update*
tau = theta_expert - theta_base, by parameter name (Ilharco et al. 2023). The merged model is
theta_base + tau_merged.

- `merge_linear`: tau = (1/n) sum_i tau_i (the average of the experts' weights).
- `merge_task_arithmetic`: tau = lam * sum_i tau_i.
- `merge_ties` (Yadav et al. 2023): trim each tau_i to its `density` share of largest magnitudes
  (over the whole expert), elect each entry's sign as the sign of the sum of the trimmed updates,
  average the trimmed entries that agree with it (the "disjoint mean"), scale by lam.
- `merge_dare_linear`, `merge_dare_ties` (DARE, Yu et al. 2024): drop each entry of each tau_i
  with probability 1 - density and scale the kept ones by 1/density, then task arithmetic (lam
  times the sum) or TIES' sign election and disjoint mean (scaled by lam). The drop masks come
  from torch's global random generator, as in peft: seed it for a reproducible merge (the MERGE
  strategy does, per step, in a forked generator that leaves training's untouched).

The sums, sign election, disjoint mean and DARE's drop are peft's (``peft.utils.merge_utils``:
``task_arithmetic``, ``dare_linear``, ``prune``, ``calculate_majority_sign_mask``,
``disjoint_merge``), called on one parameter at a time. Two parts of TIES stay here, because
peft's differ and change the numbers:

- Trim. peft's ``ties`` trims each tensor on its own (``magnitude_based_pruning``: ``topk`` of
  k = int(density * numel) entries of that tensor). The paper, and `merge_ties`, trim over the
  whole expert, so a layer of small updates can lose all its entries while another keeps all of
  its; peft's k is also floored (0 for a tensor of fewer than 1/density entries: it is dropped
  whole) and ``topk`` keeps exactly k entries, breaking ties at the threshold arbitrarily. Here
  k = round(density * entries), at least 1, and entries tied with the k-th are kept
  (`trim_threshold`). So `merge_ties` trims first and hands the trimmed tensors to peft's sign
  election and disjoint mean (``ties`` itself would trim again).
- Exact ties. Where the trimmed updates of an entry sum to exactly 0, peft elects the sign +
  (``torch.where(sum >= 0, 1, -1)``) and averages the positive entries; here the entry is 0 (no
  sign to elect), so the peft mask is and-ed with ``sum != 0``. `merge_dare_ties` does the same.

Memory. peft's functions stack the experts' tensors (``torch.stack``), where the hand-written
code summed one expert at a time. Called on whole tensors, a merge of n = 8 experts of one
80 MB tensor peaked at 17 (task arithmetic) and 39 (TIES) times that tensor's size on top of the
inputs, against 2 and 8 for the hand-written code: about 2n and 5n copies. For XLM-R base's word
embeddings (250,002 x 768 float32, 768 MB) and one expert per MASSIVE locale (n = 52) that is 80
to 200 GB. So every merge runs over slices of `CHUNK` entries of a parameter (all of peft's
operations used here are entry-wise): the same 8-expert merges then peaked at 1.9 and 4.0 times
the tensor, and peft's temporaries stay near 5 n `CHUNK` float32 entries (1 GB for n = 52)
whatever the model. TIES' `trim_threshold` still makes a float32 copy of one expert's magnitudes
at a time, as before.

These merge the dense weight updates. peft's ``add_weighted_adapter`` is something else: it
combines the LoRA factors A and B of adapters (e.g. concatenating them, ``"cat"``, or weighting
them, ``"linear"``), so its result is not the merge of the dense updates B A. Experts here are
full fine-tunes; LoRA experts are not supported.

Both strategies keep one working model on the device and the experts on the CPU, and copy weights
into the working model as needed: a merged model, or the expert a language is routed to.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import get_args

import torch

from nbforget import NbforgetError
from nbforget.config import MergeMethod
from nbforget.layers import HEAD, copy_weights, cpu_copy, parameter_group
from nbforget.languages import get_language
from nbforget.strategies.base import Step, Strategy, register
from nbforget.train import language_seed

Update = Mapping[str, torch.Tensor]
Chunks = list[torch.Tensor]

CHUNK = 1 << 20
"""Entries of one parameter merged at once (peft stacks every expert's slice of this size)."""

METHODS = get_args(MergeMethod)


def _check(updates: Sequence[Update]) -> list[str]:
    if not updates:
        raise ValueError("nothing to merge: no expert updates given")
    names = list(updates[0])
    for index, update in enumerate(updates[1:], start=1):
        if set(update) != set(names):
            raise ValueError(f"expert {index} has other parameters than expert 0; experts must share names")
    return names


def _by_chunks(updates: Sequence[Update], merge: Callable[[Chunks], torch.Tensor]) -> dict[str, torch.Tensor]:
    """``merge`` (n equally shaped 1-d slices, one per expert -> their merged slice) applied to
    every parameter, `CHUNK` entries at a time, so peft's stack of the n slices stays small."""
    merged = {}
    for name in _check(updates):
        flat = [update[name].reshape(-1) for update in updates]
        out = torch.empty_like(flat[0])
        for start in range(0, out.numel(), CHUNK):
            out[start:start + CHUNK] = merge([tensor[start:start + CHUNK] for tensor in flat])
        merged[name] = out.reshape(updates[0][name].shape)
    return merged


def _weights(value: float, chunks: Chunks) -> torch.Tensor:
    """peft's per-expert weights: `value` for each expert, in the updates' dtype (a float64
    weight would promote the merged update to float64)."""
    return torch.full((len(chunks),), value, dtype=chunks[0].dtype, device=chunks[0].device)


def merge_linear(updates: Sequence[Update]) -> dict[str, torch.Tensor]:
    """tau = (1/n) sum_i tau_i: peft's task arithmetic with weights 1/n."""
    from peft.utils import merge_utils  # here: importing peft imports transformers

    return _by_chunks(updates, lambda chunks: merge_utils.task_arithmetic(chunks, _weights(1 / len(chunks), chunks)))


def merge_task_arithmetic(updates: Sequence[Update], *, lam: float) -> dict[str, torch.Tensor]:
    """tau = lam * sum_i tau_i (so n identical experts give the expert back with lam = 1/n)."""
    from peft.utils import merge_utils

    return _by_chunks(updates, lambda chunks: merge_utils.task_arithmetic(chunks, _weights(lam, chunks)))


def trim_threshold(update: Update, density: float) -> float:
    """The magnitude an entry of `update` needs to survive TIES trimming: the k-th largest |entry|
    over all its tensors, k = round(density * entries) (at least 1). Entries tied with it are kept."""
    magnitudes = torch.cat([t.detach().reshape(-1).abs().float() for t in update.values()])
    keep = min(magnitudes.numel(), max(1, round(density * magnitudes.numel())))
    return float(torch.kthvalue(magnitudes, magnitudes.numel() - keep + 1).values)


def _elect_and_average(chunks: Chunks, lam: float) -> torch.Tensor:
    """lam times the mean of the entries whose sign is the sign of their sum (zeros not counted);
    0 where the sum is exactly 0. peft elects, and takes the disjoint mean."""
    from peft.utils import merge_utils

    stacked = torch.stack(chunks)
    agree = merge_utils.calculate_majority_sign_mask(stacked, method="total") & (stacked.sum(dim=0) != 0)
    return lam * merge_utils.disjoint_merge(stacked, agree)


def merge_ties(updates: Sequence[Update], *, density: float, lam: float) -> dict[str, torch.Tensor]:
    """TIES merging: trim, elect sign, disjoint mean, scale by lam.

    For each entry: gamma = sign(sum_i trim(tau_i)); the result is lam times the mean of the trimmed
    entries with sign gamma (trimmed-away zeros do not count). An entry whose trimmed sum is exactly
    0 gets 0. Trimming is over each expert's whole update, as in the paper (not per tensor, as in
    peft's ``ties``): the thresholds are found first, then each slice is trimmed here and elected
    and averaged by peft.
    """
    _check(updates)
    thresholds = [trim_threshold(u, density) if density < 1.0 else 0.0 for u in updates]

    def merge(chunks: Chunks) -> torch.Tensor:
        trimmed = [torch.where(chunk.abs() >= threshold, chunk, torch.zeros_like(chunk))
                   for chunk, threshold in zip(chunks, thresholds)]
        return _elect_and_average(trimmed, lam)

    return _by_chunks(updates, merge)


def merge_dare_linear(updates: Sequence[Update], *, density: float, lam: float) -> dict[str, torch.Tensor]:
    """DARE, then task arithmetic: lam * sum_i m_i * tau_i / density, each entry of each mask m_i
    kept with probability `density` (torch's global generator). Density 1 is task arithmetic."""
    from peft.utils import merge_utils

    if density >= 1.0:
        return merge_task_arithmetic(updates, lam=lam)
    return _by_chunks(updates, lambda chunks: merge_utils.dare_linear(chunks, _weights(lam, chunks), density))


def merge_dare_ties(updates: Sequence[Update], *, density: float, lam: float) -> dict[str, torch.Tensor]:
    """DARE, then TIES' sign election and disjoint mean of the dropped-and-rescaled updates, scaled
    by lam (exact ties give 0, as in `merge_ties`). Density 1 is TIES at density 1."""
    from peft.utils import merge_utils

    if density >= 1.0:
        return merge_ties(updates, density=1.0, lam=lam)

    def merge(chunks: Chunks) -> torch.Tensor:
        dropped = [merge_utils.prune(chunk, density, method="random", rescale=True) for chunk in chunks]
        return _elect_and_average(dropped, lam)

    return _by_chunks(updates, merge)


def merge_updates(updates: Sequence[Update], *, method: MergeMethod, lam: float,
                  density: float) -> dict[str, torch.Tensor]:
    if method == "linear":
        return merge_linear(updates)
    if method == "task_arithmetic":
        return merge_task_arithmetic(updates, lam=lam)
    if method == "ties":
        return merge_ties(updates, density=density, lam=lam)
    if method == "dare_linear":
        return merge_dare_linear(updates, density=density, lam=lam)
    if method == "dare_ties":
        return merge_dare_ties(updates, density=density, lam=lam)
    raise NbforgetError(f"strategy.merge.method {method!r} unknown; use {', '.join(get_args(MergeMethod))}")


class ExpertStrategy(Strategy):
    """One working model on the device; experts live on the CPU and are copied into it as needed.

    Every expert starts from what `new_model()` gives (the base encoder and the run seed's fresh
    head, as MONO's models do), so all heads share one initialisation.
    """

    def initial_model(self):
        model = self.context.new_model()
        self.start = cpu_copy(model)
        self.encoder = [n for n in self.start if parameter_group(n) != HEAD]
        self.head = [n for n in self.start if parameter_group(n) == HEAD]
        return model

    def family(self, language: str) -> str:
        return self.context.families.get(language) or language

    def expert_key(self, language: str) -> str:
        return self.family(language)

    def expert_order(self) -> list[str]:
        """Experts in the order they were first trained (from the languages trained so far)."""
        return list(dict.fromkeys(self.expert_key(language) for language in self.trained))



@register
class Merge(ExpertStrategy):
    """Scores: after each step every language is scored with the merge of the experts trained so
    far (not only the latest expert), so row t shows what merging would give at that point; the
    cost is one merge per step. Drift is that merged model's. Heads: every expert's head starts
    from the run seed's initialisation and all share the label set, so the merged head is their
    plain average, whatever the method (a task vector is a change of pretrained weights; the
    head's starting point is random). Memory: one encoder-sized update per expert, on the CPU; a
    family expert's later language continues from base + update (the expert up to rounding).
    """

    name = "merge"
    settings = ("merge",)
    page_section = "experts"
    held_out_scoring = "with the merge of the experts trained so far, the model that scores every language"
    title = "MERGE: merged per-language (or per-family) experts"
    description = (
        "Each language (or, with experts=family, each language family, trained on its languages in "
        "order) gets an expert fine-tuned from the base weights; the experts' encoder updates are "
        "merged into one model by linear averaging, task arithmetic, TIES or DARE, and the experts' heads "
        "(same label set, same initialisation) are averaged. Each row scores every language with "
        "the merge of the experts trained so far: the matrix shows what merging would give at each "
        "step, and the last row is the final merged model."
    )

    @classmethod
    def parameter_copies(cls, config: dict, order) -> int:
        """One expert per language, or per family with ``strategy.merge.experts: family``."""
        experts = config.get("strategy", {}).get("merge", {}).get("experts", "language")
        if experts == "family":
            return len({get_language(language).family for language in order})
        return len(order)

    def initial_model(self):
        model = super().initial_model()
        self.updates: dict[str, dict[str, torch.Tensor]] = {}  # expert -> encoder update, on the CPU
        self.heads: dict[str, dict[str, torch.Tensor]] = {}  # expert -> head weights, on the CPU
        return model

    def expert_key(self, language: str) -> str:
        return self.family(language) if self.context.config.strategy.merge.experts == "family" else language

    def before_language(self, model, step: Step):
        key = self.expert_key(step.label)
        if key in self.updates:  # a family's later language continues that family's expert
            copy_weights(model, {n: self.start[n] + self.updates[key][n] for n in self.encoder})
            copy_weights(model, self.heads[key])
        else:
            copy_weights(model, self.start)
        return model

    def after_language(self, model, step: Step, train_data=None):
        super().after_language(model, step, train_data)
        key = self.expert_key(step.label)
        weights = cpu_copy(model)
        self.updates[key] = {n: weights[n] - self.start[n] for n in self.encoder}
        self.heads[key] = {n: weights[n] for n in self.head}
        self.write_merged(model, seed=language_seed(self.context.seed, f"merge:{step.label}"))
        return model

    def step_record(self, model, step: Step) -> dict:
        """The experts merged into this step's model, and how."""
        settings = self.context.config.strategy.merge
        return {"experts": self.expert_order(), "trained_expert": self.expert_key(step.label),
                "method": settings.method, "lam": settings.lam, "density": settings.density}

    def write_merged(self, model, *, seed: int) -> None:
        """Put base + merged update of the experts trained so far, and their mean head, into `model`.

        DARE's drop masks come from torch's CPU generator: seeded with `seed` inside a fork, so
        the merge repeats exactly and the generator's state outside it is unchanged."""
        settings = self.context.config.strategy.merge
        experts = self.expert_order()
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            merged = merge_updates([self.updates[k] for k in experts], method=settings.method, lam=settings.lam,
                                   density=settings.density)
        copy_weights(model, {n: self.start[n] + merged[n] for n in self.encoder})
        copy_weights(model, merge_linear([self.heads[k] for k in experts]))

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for kind, store in (("update", self.updates), ("head", self.heads)):
            for key, values in store.items():
                tensors.update({f"{kind}/{key}/{n}": v for n, v in values.items()})
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        loaded: dict[str, dict[str, dict[str, torch.Tensor]]] = {"update": {}, "head": {}}
        for key, value in tensors.items():
            kind, expert, name = key.split("/", 2)
            loaded[kind].setdefault(expert, {})[name] = value
        self.updates = {k: {n: loaded["update"][k][n] for n in self.encoder} for k in self.expert_order()}
        self.heads = {k: {n: loaded["head"][k][n] for n in self.head} for k in self.expert_order()}


@register
class FamilyExperts(ExpertStrategy):
    """Routing: a language is scored with its family's expert; until its family has one, with the
    expert trained most recently (its zero-shot score, as MONO scores untrained languages with the
    latest model). Drift is the drift of the expert the step trained. Memory: one full copy of the
    weights per family seen so far, on the CPU (13 WALS families for all 52 MASSIVE languages),
    never more models on the device than the working one.
    """

    name = "family_experts"
    separate_parameters = "family"
    page_section = "experts"
    held_out_scoring = ("as any language is routed: with the expert of its language family once that family "
                        "has one (zero-shot transfer within the family), otherwise with the expert trained most "
                        "recently")
    title = "FAMILY EXPERTS: one model per language family"
    description = (
        "One expert per language family (WALS): the first language of a family is fine-tuned from the "
        "base weights, later languages of that family continue its expert. Each language is scored "
        "with its family's expert; a language whose family has no expert yet is scored with the "
        "latest trained expert (zero-shot, as MONO does). Experts are kept as weights on the CPU."
    )

    def initial_model(self):
        model = super().initial_model()
        self.experts: dict[str, dict[str, torch.Tensor]] = {}  # family -> all weights, on the CPU
        self.loaded: str | None = None  # the expert whose weights the working model holds
        return model

    def load(self, model, key: str):
        if self.loaded != key:
            copy_weights(model, self.experts[key])
            self.loaded = key
        return model

    def latest(self) -> str:
        return self.expert_key(self.trained[-1])

    def before_language(self, model, step: Step):
        key = self.expert_key(step.label)
        if key in self.experts:
            self.load(model, key)
        else:
            copy_weights(model, self.start)
        self.loaded = None  # training changes the weights
        return model

    def after_language(self, model, step: Step, train_data=None):
        super().after_language(model, step, train_data)
        key = self.expert_key(step.label)
        self.experts[key] = cpu_copy(model)
        self.loaded = key
        return model

    def model_for(self, model, language: str, step: Step):
        key = self.expert_key(language)
        return self.load(model, key if key in self.experts else self.latest())

    def drift_model(self, model):
        return self.load(model, self.latest())  # the expert this step trained

    def step_record(self, model, step: Step) -> dict:
        """The expert this step trained and every expert so far, with the languages each serves."""
        served: dict[str, list[str]] = {}
        for language in (*self.context.order, *self.context.held_out):  # held-out languages are routed too
            served.setdefault(self.expert_key(language), []).append(language)
        return {"trained_expert": self.expert_key(step.label),
                "experts": {key: served.get(key, []) for key in self.experts}}

    def state(self) -> dict[str, torch.Tensor]:
        return {f"expert/{key}/{n}": v for key, values in self.experts.items() for n, v in values.items()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        loaded: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            _, expert, name = key.split("/", 2)
            loaded.setdefault(expert, {})[name] = value
        self.experts = {k: {n: loaded[k][n] for n in self.start} for k in self.expert_order()}
        self.loaded = None
