"""Study 2's parameter alignment strategies: freezing, L2-SP, EWC, reversion, merging, family experts.

Hook tests run on a tiny randomly initialised XLM-R (3 layers, 16 wide) and synthetic sentences,
stepping a strategy the way the engine does (before_language, training with extra_loss,
after_language). The merge math is checked on hand-made tensors. The slow tests run every strategy
registered by the alignment modules end to end on the quick profile.
"""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from nbforget import NbforgetError
from nbforget.config import FreezeSettings, load_config
from nbforget.strategies import REGISTRY, RunContext, Step, get_strategy
from nbforget.strategies import alignment, merging
from nbforget.strategies.alignment import frozen_groups, parameter_group
from nbforget.strategies.merging import merge_linear, merge_task_arithmetic, merge_ties
from nbforget.encoding import Encoded
from nbforget.models import count_parameters
from nbforget.tasks.classification import SentenceClassification
from nbforget.train import train_language

ALIGNMENT_STRATEGIES = [name for name, cls in REGISTRY.items()
                        if cls.__module__ in (alignment.__name__, merging.__name__)]
LANGUAGES = ("en-US", "ru-RU", "th-TH")
FAMILIES = {"en-US": "Indo-European", "ru-RU": "Indo-European", "th-TH": "Tai-Kadai"}
CPU = torch.device("cpu")
TOPICS = SentenceClassification(("a", "b", "c"))
NUM_LAYERS = 3


class TinyContext(RunContext):
    """A run context whose base model is a tiny random XLM-R: the same weights on every call."""

    def new_model(self):
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        torch.manual_seed(self.seed)
        config = XLMRobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=NUM_LAYERS,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=24,
                                  pad_token_id=1, type_vocab_size=1, num_labels=3)
        return XLMRobertaForSequenceClassification(config).to(self.device)


def tiny_strategy(name: str, settings: dict | None = None):
    config = load_config(None, {"strategy": settings or {}})
    context = TinyContext(config, TOPICS, "tiny", 0, CPU, LANGUAGES, FAMILIES)
    return get_strategy(name)(context)


def synthetic(seed: int, size: int = 32) -> Encoded:
    """Sentences of random tokens whose class is the first token mod 3 (learnable)."""
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(size):
        words = [rng.randrange(5, 40) for _ in range(rng.randrange(3, 10))]
        ids.append([0] + words + [2])
        labels.append(words[0] % 3)
    return Encoded(ids, labels, list(labels), sum(map(len, ids)))


def train_step(strategy, model, index: int, language: str | None = None, *, epochs: int = 3,
               learning_rate: float = 1e-2):
    """One language step as the engine runs it (language: the order's, by default)."""
    step = Step(index, (language or LANGUAGES[index],))
    data = synthetic(index)
    model = strategy.before_language(model, step)
    train_language(model, data, Encoded([], [], [], 0), task=TOPICS, dev_score=None, epochs=epochs,
                   batch_size=8, learning_rate=learning_rate, weight_decay=0.01, warmup_ratio=0.0,
                   patience=epochs, bf16=False, seed=index, pad_id=1, device=CPU,
                   extra_loss=strategy.extra_loss, progress=False)
    return strategy.after_language(model, step, data)


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def by_group(tensors: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in tensors:
        groups.setdefault(parameter_group(name), []).append(name)
    return groups


def max_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names) -> float:
    return max(float((a[n] - b[n]).abs().max()) for n in names)


def test_alignment_strategies_are_registered():
    assert set(ALIGNMENT_STRATEGIES) == {"freeze", "l2sp", "ewc", "reversion", "merge", "family_experts"}


# ---------------------------------------------------------------------------------------------
# Hard layer freezing
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, expected", [
    ({}, ["embeddings"]),
    ({"embeddings": False}, []),
    ({"embeddings": False, "bottom": 1}, ["layer.0"]),
    ({"embeddings": False, "top": 2}, ["layer.1", "layer.2"]),
    ({"bottom": 1, "top": 1}, ["embeddings", "layer.0", "layer.2"]),
    ({"embeddings": False, "layers": [2, 0], "bottom": 1}, ["layer.0", "layer.2"]),
    ({"bottom": 3}, ["embeddings", "layer.0", "layer.1", "layer.2"]),
])
def test_frozen_groups(settings, expected):
    assert frozen_groups(FreezeSettings(**settings), NUM_LAYERS) == expected


@pytest.mark.parametrize("settings, field", [
    ({"layers": [0, 3]}, "strategy.freeze.layers[1]"),
    ({"layers": [-1]}, "strategy.freeze.layers[0]"),
    ({"bottom": 4}, "strategy.freeze.bottom"),
    ({"top": -1}, "strategy.freeze.top"),
])
def test_frozen_groups_name_the_bad_setting(settings, field):
    with pytest.raises(NbforgetError, match=field.replace("[", r"\[").replace("]", r"\]")):
        frozen_groups(FreezeSettings(**settings), NUM_LAYERS)


@pytest.mark.parametrize("settings, frozen", [
    ({"after_first": False}, ["embeddings"]),
    ({"after_first": False, "embeddings": False, "bottom": 1, "top": 1}, ["layer.0", "layer.2"]),
    ({"after_first": True, "layers": [1]}, ["embeddings", "layer.1"]),
])
def test_frozen_parameters_are_bitwise_unchanged(settings, frozen):
    strategy = tiny_strategy("freeze", {"freeze": settings})
    model = strategy.initial_model()
    before = weights(model)
    model = train_step(strategy, model, 0)
    after_first = weights(model)
    model = train_step(strategy, model, 1)
    after_second = weights(model)
    groups = by_group(before)
    for group, names in groups.items():
        for name in names:
            if group in frozen:
                # after_first: the first language trains every layer; frozen from the second on
                reference = after_first if settings["after_first"] else before
                assert torch.equal(after_second[name], reference[name]), name
                assert torch.equal(after_first[name], before[name]) != settings["after_first"], name
        if group not in frozen:
            assert max_change(after_second, after_first, names) > 0, group
    # what the engine records as the step's trainable parameters
    assert count_parameters(model) < sum(p.numel() for p in before.values())


# ---------------------------------------------------------------------------------------------
# Soft regularization
# ---------------------------------------------------------------------------------------------

def test_very_large_l2_weight_keeps_the_encoder_at_the_base():
    drift = {}
    for weight in (0.0, 1e6):
        strategy = tiny_strategy("l2sp", {"regularization": {"l2_weight": weight}})
        model = strategy.initial_model()
        base = weights(model)
        model = train_step(strategy, model, 0, epochs=30)
        encoder = [n for n in base if parameter_group(n) != "head"]
        drift[weight] = max_change(weights(model), base, encoder)
    # Not bitwise: at theta = theta_base the penalty has no gradient, so AdamW's first step moves
    # every weight by about the learning rate (1e-2); the penalty then pulls it back, and 120 steps
    # later it is ~1e-4 from the base while unpenalised training drifts ~0.3.
    assert drift[1e6] < 1e-3
    assert drift[1e6] < drift[0.0] / 100


def test_l2_layer_weights_reach_only_their_layers():
    strategy = tiny_strategy("l2sp", {"regularization": {"layer_weights": {"layer.1": 0.0, "head": 2.0}}})
    strategy.initial_model()
    groups = {parameter_group(n) for n in strategy.factors}
    assert "layer.1" not in groups and {"embeddings", "layer.0", "layer.2", "head"} <= groups
    assert {strategy.factors[n] for n in strategy.factors if parameter_group(n) == "head"} == {2.0}
    free_head = tiny_strategy("l2sp")
    free_head.initial_model()
    assert "head" not in {parameter_group(n) for n in free_head.factors}  # fresh head: no anchor by default


def test_unknown_layer_weight_key_is_named():
    with pytest.raises(NbforgetError, match="layer_weights: unknown layer 'layer.7'"):
        tiny_strategy("l2sp", {"regularization": {"layer_weights": {"layer.7": 1.0}}}).initial_model()


@pytest.mark.parametrize("mode, terms_after_two", [("online", ["online"]), ("separate", ["en-US", "ru-RU"])])
def test_ewc_penalty_is_zero_on_the_first_language(mode, terms_after_two):
    strategy = tiny_strategy("ewc", {"regularization": {"ewc_mode": mode}})
    model = strategy.initial_model()
    model = strategy.before_language(model, Step(0, ("en-US",)))
    assert strategy.extra_loss(model) is None  # nothing to protect before the first language is learnt
    model = train_step(strategy, model, 0)
    assert float(strategy.extra_loss(model).detach()) == 0.0  # at the anchor
    assert sum(float(f.sum()) for f in strategy.fisher["online" if mode == "online" else "en-US"].values()) > 0
    model = train_step(strategy, model, 1)
    assert strategy.terms() == terms_after_two
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert float(strategy.extra_loss(model).detach()) > 0


def test_online_ewc_decays_the_running_fisher():
    fishers = {}
    for gamma in (0.0, 1.0):
        strategy = tiny_strategy("ewc", {"regularization": {"ewc_gamma": gamma}})
        model = train_step(strategy, strategy.initial_model(), 0)
        first = {n: f.clone() for n, f in strategy.fisher["online"].items()}
        train_step(strategy, model, 1)
        fishers[gamma] = (first, strategy.fisher["online"])
    first, zero = fishers[0.0]
    _, one = fishers[1.0]
    # same data and seeds, so the second language's own Fisher is `zero` (gamma 0 forgets the first)
    for name in first:
        torch.testing.assert_close(one[name], first[name] + zero[name])


@pytest.mark.parametrize("mode", ["online", "separate"])
def test_ewc_state_round_trip_gives_the_same_penalty(mode):
    strategy = tiny_strategy("ewc", {"regularization": {"ewc_mode": mode}})
    model = train_step(strategy, strategy.initial_model(), 0)
    model = train_step(strategy, model, 1)
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    saved = {k: v.clone() for k, v in reversed(list(strategy.state().items()))}  # order must not matter
    resumed = tiny_strategy("ewc", {"regularization": {"ewc_mode": mode}})
    resumed.prepare_resume(resumed.initial_model(), ["en-US", "ru-RU"])
    resumed.load_state(saved)
    assert torch.equal(resumed.extra_loss(model), strategy.extra_loss(model))


# ---------------------------------------------------------------------------------------------
# Post-hoc weight reversion
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, alphas", [
    ({"alpha": 1.0}, {"embeddings": 1.0, "layer.0": 1.0, "layer.1": 1.0, "layer.2": 1.0}),
    ({"alpha": 0.0, "layer_alpha": {"layer.1": 1.0}}, {"embeddings": 0.0, "layer.0": 0.0, "layer.1": 1.0,
                                                       "layer.2": 0.0}),
    ({"alpha": 0.25, "layer_alpha": {"embeddings": 0.0}}, {"embeddings": 0.0, "layer.0": 0.25,
                                                          "layer.1": 0.25, "layer.2": 0.25}),
])
def test_reversion_moves_each_layer_by_its_alpha(settings, alphas):
    strategy = tiny_strategy("reversion", {"reversion": settings})
    model = strategy.initial_model()
    base = weights(model)
    with torch.no_grad():  # stand-in for training: every weight moved
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    trained = weights(model)
    model = strategy.after_language(model, Step(0, ("en-US",)))
    reverted = weights(model)
    for name in base:
        group = parameter_group(name)
        if group == "head":
            assert torch.equal(reverted[name], trained[name])  # never reverted
        elif alphas[group] == 1.0:
            assert torch.equal(reverted[name], base[name])  # bitwise: copied, not interpolated
        elif alphas[group] == 0.0:
            assert torch.equal(reverted[name], trained[name])
        else:
            expected = trained[name] + alphas[group] * (base[name] - trained[name])
            torch.testing.assert_close(reverted[name], expected)


def test_reversion_at_the_end_waits_for_finish():
    strategy = tiny_strategy("reversion", {"reversion": {"alpha": 1.0, "when": "end"}})
    model = strategy.initial_model()
    base = weights(model)
    model = train_step(strategy, model, 0)
    encoder = [n for n in base if parameter_group(n) != "head"]
    assert max_change(weights(model), base, encoder) > 0
    model = strategy.finish(model)
    assert all(torch.equal(weights(model)[n], base[n]) for n in encoder)


@pytest.mark.parametrize("settings, message", [
    ({"alpha": 1.5}, "strategy.reversion.alpha is 1.5"),
    ({"layer_alpha": {"layer.0": -0.5}}, "strategy.reversion.layer_alpha.layer.0 is -0.5"),
    ({"layer_alpha": {"head": 1.0}}, "'head' is not allowed"),
])
def test_reversion_settings_are_checked(settings, message):
    with pytest.raises(NbforgetError, match=message):
        tiny_strategy("reversion", {"reversion": settings}).initial_model()


# ---------------------------------------------------------------------------------------------
# Merge math (task vectors: dicts of tensors)
# ---------------------------------------------------------------------------------------------

EXPERT = {"a": torch.tensor([0.5, -2.0, 0.0]), "b": torch.tensor([[1.0, -0.25], [3.0, 0.75]])}


@pytest.mark.parametrize("merge", [
    merge_linear,
    lambda updates: merge_task_arithmetic(updates, lam=1 / len(updates)),  # lam * sum = the mean
    lambda updates: merge_ties(updates, density=1.0, lam=1.0),  # density < 1 would trim the expert
], ids=["linear", "task_arithmetic", "ties"])
def test_merging_identical_experts_returns_the_expert(merge):
    merged = merge([EXPERT, EXPERT, EXPERT])
    for name, tensor in EXPERT.items():
        torch.testing.assert_close(merged[name], tensor, rtol=0, atol=1e-7)
    base = {"a": torch.randn(3), "b": torch.randn(2, 2)}
    experts = [{n: base[n] + EXPERT[n] for n in base}] * 3
    weights_merged = merge([{n: e[n] - base[n] for n in base} for e in experts])
    for name in base:
        torch.testing.assert_close(base[name] + weights_merged[name], experts[0][name])


def test_linear_and_task_arithmetic_by_hand():
    updates = [{"w": torch.tensor([1.0, -2.0])}, {"w": torch.tensor([3.0, 4.0])}]
    torch.testing.assert_close(merge_linear(updates)["w"], torch.tensor([2.0, 1.0]))  # (1+3)/2, (-2+4)/2
    torch.testing.assert_close(merge_task_arithmetic(updates, lam=0.5)["w"], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(merge_task_arithmetic(updates, lam=1.0)["w"], torch.tensor([4.0, 2.0]))


def test_ties_by_hand():
    updates = [
        {"a": torch.tensor([4.0, -1.0]), "b": torch.tensor([0.5, 3.0])},
        {"a": torch.tensor([-2.0, 2.5]), "b": torch.tensor([1.0, -6.0])},
        {"a": torch.tensor([1.0, 5.0]), "b": torch.tensor([-3.0, 0.2])},
    ]
    # Trim, density 0.5: each expert keeps its 2 largest of 4 magnitudes (over a and b together)
    #   expert 0: |4| |-1| |0.5| |3|     -> a = [ 4, 0  ], b = [ 0, 3 ]
    #   expert 1: |-2| |2.5| |1| |-6|    -> a = [ 0, 2.5], b = [ 0, -6]
    #   expert 2: |1| |5| |-3| |0.2|     -> a = [ 0, 5  ], b = [-3, 0 ]
    # Elect: sign of the trimmed sums: a = [4, 7.5] -> [+, +]; b = [-3, -3] -> [-, -]
    #   (b[1]: +3 against -6: the larger mass wins, though as many experts are positive)
    # Disjoint mean of the agreeing non-zero entries:
    #   a[0] = 4 / 1 = 4; a[1] = (2.5 + 5) / 2 = 3.75; b[0] = -3 / 1 = -3; b[1] = -6 / 1 = -6
    merged = merge_ties(updates, density=0.5, lam=1.0)
    torch.testing.assert_close(merged["a"], torch.tensor([4.0, 3.75]))
    torch.testing.assert_close(merged["b"], torch.tensor([-3.0, -6.0]))
    # lam scales the result
    torch.testing.assert_close(merge_ties(updates, density=0.5, lam=0.5)["a"], torch.tensor([2.0, 1.875]))
    # Density 1 keeps everything:
    #   a[0]: 4 - 2 + 1 = 3 > 0        -> (4 + 1) / 2 = 2.5
    #   a[1]: -1 + 2.5 + 5 = 6.5 > 0   -> (2.5 + 5) / 2 = 3.75
    #   b[0]: 0.5 + 1 - 3 = -1.5 < 0   -> -3 (one large negative outweighs two small positives)
    #   b[1]: 3 - 6 + 0.2 = -2.8 < 0   -> -6
    full = merge_ties(updates, density=1.0, lam=1.0)
    torch.testing.assert_close(full["a"], torch.tensor([2.5, 3.75]))
    torch.testing.assert_close(full["b"], torch.tensor([-3.0, -6.0]))


def test_ties_exact_sign_tie_gives_zero():
    merged = merge_ties([{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([-1.0, 0.0])}], density=1.0, lam=1.0)
    torch.testing.assert_close(merged["w"], torch.tensor([0.0, 2.0]))  # 1 - 1 = 0: no sign to elect


# Pinned numbers: three experts over two tensors with values that are not exact in float32, so a
# change of formula (not only of rounding) shows. Expected values are worked out by hand below.
PINNED = [
    {"w": torch.tensor([[0.1, -0.2, 0.3], [1.5, 0.0, -2.25]]), "b": torch.tensor([0.7, -0.05])},
    {"w": torch.tensor([[0.4, 0.2, -0.9], [-0.5, 1.0, 0.25]]), "b": torch.tensor([0.1, 0.15])},
    {"w": torch.tensor([[-0.2, 0.6, 0.3], [0.5, -3.0, 1.0]]), "b": torch.tensor([-0.2, 0.4])},
]
# sums: w = [[0.3, 0.6, -0.3], [1.5, -2.0, -1.0]], b = [0.6, 0.5]


def test_linear_and_task_arithmetic_pinned():
    linear = merge_linear(PINNED)  # sum / 3
    torch.testing.assert_close(linear["w"], torch.tensor([[0.1, 0.2, -0.1], [0.5, -2 / 3, -1 / 3]]))
    torch.testing.assert_close(linear["b"], torch.tensor([0.2, 1 / 6]))
    task = merge_task_arithmetic(PINNED, lam=0.3)  # 0.3 * sum
    torch.testing.assert_close(task["w"], torch.tensor([[0.09, 0.18, -0.09], [0.45, -0.6, -0.3]]))
    torch.testing.assert_close(task["b"], torch.tensor([0.18, 0.15]))
    assert all(t.dtype == torch.float32 and t.shape == PINNED[0][n].shape for n, t in task.items())


def test_ties_pinned():
    # density 0.5: each expert keeps its 4 largest of 8 magnitudes (over w and b together)
    #   expert 0: |2.25| |1.5| |0.7| |0.3|  -> w = [[0, 0, 0.3], [1.5, 0, -2.25]], b = [0.7, 0]
    #   expert 1: |1.0| |0.9| |0.5| |0.4|  -> w = [[0.4, 0, -0.9], [-0.5, 1.0, 0]], b = [0, 0]
    #   expert 2: |3.0| |1.0| |0.6| |0.5|  -> w = [[0, 0.6, 0], [0.5, -3.0, 1.0]], b = [0, 0]
    # elect (sign of trimmed sums): w = [[0.4, 0.6, -0.6], [1.5, -2.0, -1.25]] -> [[+, +, -], [+, -, -]];
    #   b = [0.7, 0] -> [+, 0]
    # disjoint mean: w[0] = [0.4, 0.6, -0.9]; w[1, 0] = (1.5 + 0.5) / 2 = 1.0; w[1, 1] = -3.0;
    #   w[1, 2] = -2.25 (1.0 disagrees); b = [0.7, 0]
    merged = merge_ties(PINNED, density=0.5, lam=1.0)
    torch.testing.assert_close(merged["w"], torch.tensor([[0.4, 0.6, -0.9], [1.0, -3.0, -2.25]]))
    torch.testing.assert_close(merged["b"], torch.tensor([0.7, 0.0]))
    scaled = merge_ties(PINNED, density=0.5, lam=0.3)  # lam scales the disjoint mean
    torch.testing.assert_close(scaled["w"], torch.tensor([[0.12, 0.18, -0.27], [0.3, -0.9, -0.675]]))
    torch.testing.assert_close(scaled["b"], torch.tensor([0.21, 0.0]))


def test_ties_trims_over_the_whole_expert_not_per_tensor():
    updates = [{"big": torch.tensor([8.0, -6.0]), "small": torch.tensor([0.5, 0.25])},
               {"big": torch.tensor([-4.0, 2.0]), "small": torch.tensor([-0.75, 1.0])}]
    # density 0.5 over each expert's 4 entries: both keep their "big" pair, "small" is trimmed away
    # (trimming each tensor to half would keep small = [0.5, 0] and [0, 1.0], giving [0.5, 1.0]).
    # elect big: 8 - 4 = 4 -> +, -6 + 2 = -4 -> -; disjoint mean: [8, -6]
    merged = merge_ties(updates, density=0.5, lam=1.0)
    torch.testing.assert_close(merged["big"], torch.tensor([8.0, -6.0]))
    torch.testing.assert_close(merged["small"], torch.tensor([0.0, 0.0]))


@pytest.mark.parametrize("density, expected", [
    (0.25, [3.0, -3.0, 0.0, 0.0, 0.0]),  # keep round(1.25) = 1 entry: |3|, and -3 ties with it
    (0.5, [3.0, -3.0, 0.0, 0.0, 0.0]),   # keep round(2.5) = 2: the two |3|
    (0.7, [3.0, -3.0, 1.0, 2.0, 0.0]),   # keep round(3.5) = 4 (rounded, not floored to 3)
    (0.1, [3.0, -3.0, 0.0, 0.0, 0.0]),   # keep round(0.5) = 0, raised to 1: |3| and its tie
])
def test_ties_trim_count_rounds_and_keeps_ties(density, expected):
    # one expert: the elected sign is its own, so the merge is the trimmed update itself
    merged = merge_ties([{"w": torch.tensor([3.0, -3.0, 1.0, 2.0, 0.5])}], density=density, lam=1.0)
    torch.testing.assert_close(merged["w"], torch.tensor(expected))


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties"])
def test_merging_in_slices_gives_the_same_numbers(monkeypatch, method):
    # peft stacks the experts' tensors; merging CHUNK entries at a time bounds that stack. Slices
    # of 4 entries (w has 6, b 2) give what whole tensors give. (DARE draws its masks slice by
    # slice, so slicing changes which entries a given seed drops, not how they are drawn.)
    whole = merging.merge_updates(PINNED, method=method, lam=0.3, density=0.5)
    monkeypatch.setattr(merging, "CHUNK", 4)
    sliced = merging.merge_updates(PINNED, method=method, lam=0.3, density=0.5)
    for name, tensor in whole.items():
        assert torch.equal(sliced[name], tensor), name


def test_merge_methods_match_the_config_check():
    for method in merging.METHODS:
        load_config(None, {"strategy": {"merge": {"method": method}}})
    with pytest.raises(NbforgetError, match="strategy.merge.method: expected linear, task_arithmetic, ties, dare_linear or dare_ties"):
        load_config(None, {"strategy": {"merge": {"method": "magnitude_prune"}}})


def test_dare_drops_and_rescales():
    update = {"w": torch.linspace(0.5, 1.5, 20_000)}
    torch.manual_seed(0)
    merged = merging.merge_dare_linear([update], density=0.25, lam=0.5)["w"]
    kept = merged != 0
    assert abs(float(kept.float().mean()) - 0.25) < 0.02  # each entry kept with probability 0.25
    # kept entries are lam * tau / density: 0.5 * tau * 4 = 2 tau
    torch.testing.assert_close(merged[kept], 2 * update["w"][kept])
    # one expert elects its own signs, so DARE-TIES drops the same entries (same seed)
    torch.manual_seed(0)
    torch.testing.assert_close(merging.merge_dare_ties([update], density=0.25, lam=0.5)["w"], merged)
    torch.manual_seed(0)
    assert torch.equal(merging.merge_dare_linear([update], density=0.25, lam=0.5)["w"], merged)  # seeded: repeats


def test_dare_with_density_one_is_task_arithmetic_or_ties():
    torch.testing.assert_close(merging.merge_dare_linear(PINNED, density=1.0, lam=0.3)["w"],
                               merge_task_arithmetic(PINNED, lam=0.3)["w"])
    torch.testing.assert_close(merging.merge_dare_ties(PINNED, density=1.0, lam=0.3)["w"],
                               merge_ties(PINNED, density=1.0, lam=0.3)["w"])


def test_dare_ties_exact_sign_tie_gives_zero():
    # +1 and -1, each kept with probability 0.5 and then doubled: where only one survives the merge
    # is +2 or -2 (a quarter of the entries each); where both survive, 2 - 2 = 0 elects no sign and
    # gives 0, as where neither does. (Electing + on such ties, as peft's dare_ties does, would
    # make half of the entries +2.)
    updates = [{"w": torch.ones(20_000)}, {"w": -torch.ones(20_000)}]
    torch.manual_seed(0)
    merged = merging.merge_dare_ties(updates, density=0.5, lam=1.0)["w"]
    assert set(merged.unique().tolist()) == {-2.0, 0.0, 2.0}
    for value, share in ((2.0, 0.25), (-2.0, 0.25), (0.0, 0.5)):
        assert abs(float((merged == value).float().mean()) - share) < 0.02, value


def test_merge_rejects_mismatched_experts():
    with pytest.raises(ValueError, match="expert 1"):
        merge_linear([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_ties([], density=0.5, lam=1.0)


# ---------------------------------------------------------------------------------------------
# Experts: merging strategy and family experts
# ---------------------------------------------------------------------------------------------

def test_merge_with_one_expert_per_family():
    strategy = tiny_strategy("merge", {"merge": {"experts": "family", "method": "linear"}})
    model = strategy.initial_model()
    start = weights(model)
    model = train_step(strategy, model, 0)  # en-US: Indo-European expert from the base
    expert = weights(model)  # linear merge of one expert = that expert (up to rounding)
    model = strategy.before_language(model, Step(1, ("ru-RU",)))  # continues the Indo-European expert
    for name in start:
        torch.testing.assert_close(weights(model)[name], expert[name], rtol=0, atol=1e-6)
    model = train_step(strategy, model, 1)
    model = train_step(strategy, model, 2)  # th-TH: a new expert from the base
    assert list(strategy.updates) == ["Indo-European", "Tai-Kadai"]
    merged = weights(model)
    for name in start:
        if parameter_group(name) != "head":
            expected = start[name] + (strategy.updates["Indo-European"][name] + strategy.updates["Tai-Kadai"][name]) / 2
        else:
            expected = (strategy.heads["Indo-European"][name] + strategy.heads["Tai-Kadai"][name]) / 2
        torch.testing.assert_close(merged[name], expected)


def test_merge_with_dare_repeats_and_leaves_the_generator_alone():
    from nbforget.train import language_seed

    strategy = tiny_strategy("merge", {"merge": {"method": "dare_ties", "density": 0.5}})
    model = strategy.initial_model()
    model = train_step(strategy, model, 0)
    model = train_step(strategy, model, 1)
    merged = weights(model)
    state = torch.get_rng_state()
    strategy.write_merged(model, seed=language_seed(0, "merge:ru-RU"))  # the seed step 1 used
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(weights(model)[n], merged[n]) for n in merged)
    strategy.write_merged(model, seed=1)  # another seed drops other entries
    assert any(not torch.equal(weights(model)[n], merged[n]) for n in strategy.encoder)


def test_family_experts_route_each_language_to_its_family():
    strategy = tiny_strategy("family_experts")
    model = strategy.initial_model()
    start = weights(model)
    model = train_step(strategy, model, 0)  # en-US -> Indo-European
    indo_european = weights(model)
    # th-TH's family has no expert yet: the latest expert scores it
    assert all(torch.equal(weights(strategy.model_for(model, "th-TH", Step(0, ("en-US",))))[n], indo_european[n])
               for n in start)
    model = strategy.before_language(model, Step(1, ("th-TH",)))
    assert all(torch.equal(weights(model)[n], start[n]) for n in start)  # a new family starts from the base
    model = train_step(strategy, model, 1, "th-TH")
    tai_kadai = weights(model)
    step = Step(1, ("th-TH",))
    for language, expected in (("en-US", indo_european), ("ru-RU", indo_european), ("th-TH", tai_kadai)):
        routed = weights(strategy.model_for(model, language, step))
        assert all(torch.equal(routed[n], expected[n]) for n in start), language
    assert all(torch.equal(weights(strategy.drift_model(model))[n], tai_kadai[n]) for n in start)
    model = strategy.before_language(model, Step(2, ("ru-RU",)))  # continues the Indo-European expert
    assert all(torch.equal(weights(model)[n], indo_european[n]) for n in start)
    assert sorted(strategy.experts) == ["Indo-European", "Tai-Kadai"]


# ---------------------------------------------------------------------------------------------
# End to end on the quick profile
# ---------------------------------------------------------------------------------------------

def score_table(path) -> pd.DataFrame:
    return pd.read_csv(path / "scores.csv")


def assert_complete(path, order) -> None:
    from nbforget.runs import score_matrix

    assert (path / "status").read_text().strip() == "complete"
    matrix = score_matrix(score_table(path), list(order), metric="accuracy")
    assert matrix.shape == (len(order), len(order)) and not np.isnan(matrix).any()
    drift = pd.read_csv(path / "drift.csv")
    assert sorted(drift.step.unique()) == list(range(len(order)))
    assert {"embeddings", "layer.0", "layer.1"} <= set(drift.layer) and (drift.relative_drift >= 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ALIGNMENT_STRATEGIES)
def test_strategy_runs_end_to_end(quick_runs, strategy):
    path = quick_runs.path(strategy)
    assert_complete(path, quick_runs.config.languages)


@pytest.mark.slow
@pytest.mark.parametrize("strategy, settings", [
    ("merge", {"merge": {"experts": "family", "method": "task_arithmetic", "lam": 0.5}}),
    ("ewc", {"regularization": {"ewc_mode": "separate"}}),
    ("freeze", {"freeze": {"after_first": False, "top": 1}}),
])
def test_strategy_variants_run_end_to_end(quick_config, strategy, settings):
    from nbforget.engine import run_strategy

    config = quick_config({"strategy": settings})
    assert_complete(run_strategy(config, strategy, progress=False), config.languages)


@pytest.mark.slow
def test_frozen_layers_are_unchanged_after_an_engine_step(quick_config):
    from nbforget.engine import run_strategy
    from nbforget.tasks import prepare
    from nbforget.strategies import run_store

    config = quick_config({"strategy": {"freeze": {"after_first": False, "embeddings": True, "layers": [0]}}})
    path = run_strategy(config, "freeze", progress=False, stop_after=1)  # one step, then a checkpoint
    store = run_store(config, "freeze")
    checkpoint = store.load_checkpoint()
    assert store.path == path and checkpoint is not None
    prepared = prepare(config, progress=False)
    base = RunContext(config, prepared.task, prepared.base_source, config.seeds[0], CPU).new_model()
    groups = by_group(weights(base))
    for name in groups["embeddings"] + groups["layer.0"]:
        assert torch.equal(checkpoint[name], base.state_dict()[name]), name
    assert max_change(checkpoint, weights(base), groups["layer.1"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["online", "separate"])
def test_ewc_resumes_to_the_same_scores(quick_runs, quick_config, tmp_path, mode):
    from nbforget.engine import run_strategy

    # a weight large enough that the Fisher and anchors shape the later steps (100 barely does here)
    overrides = {"strategy": {"regularization": {"ewc_mode": mode, "ewc_weight": 1e6}}}
    uninterrupted = run_strategy(quick_config(overrides, runs_dir=tmp_path / "whole"), "ewc", progress=False)
    config = quick_config(overrides, runs_dir=tmp_path / "interrupted")
    first = run_strategy(config, "ewc", progress=False, stop_after=1)
    assert (first / "status").read_text().strip() == "running"
    assert sorted(score_table(first).step.unique()) == [-1, 0]  # the base row and the first step
    resumed = run_strategy(config, "ewc", progress=False)
    pd.testing.assert_frame_equal(score_table(resumed), score_table(uninterrupted))
    drift = pd.read_csv(resumed / "drift.csv")
    pd.testing.assert_frame_equal(drift, pd.read_csv(uninterrupted / "drift.csv"))
    vanilla = pd.read_csv(quick_runs.path("vanilla") / "drift.csv")
    assert not np.allclose(drift[drift.step > 0].relative_drift, vanilla[vanilla.step > 0].relative_drift)
