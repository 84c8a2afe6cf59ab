"""Metrics on hand-computed matrices, the METRICS.md fixture, limits and invalid input."""
import numpy as np
import pandas as pd
import pytest

from nbforget import metrics

NAN = np.nan

# The fixture of METRICS.md.
FIXTURE = np.array(
    [
        [0.80, 0.30, 0.20, 0.10],
        [0.60, 0.85, 0.35, 0.15],
        [0.90, 0.65, 0.90, 0.25],
        [0.50, 0.70, 0.60, 0.88],
    ]
)
FIXTURE_BASE = np.array([0.05, 0.06, 0.07, 0.08])

# A 3 x 3 matrix where the max-based and learned-based forgetting differ (0.7 > 0.6 in column 0).
SMALL = np.array(
    [
        [0.6, 0.2, 0.1],
        [0.7, 0.8, 0.3],
        [0.5, 0.6, 0.9],
    ]
)
SMALL_BASE = np.array([0.1, 0.1, 0.2])


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, equal_nan=True)


# --------------------------------------------------------------------------------------------
# METRICS.md fixture: every number it lists
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "compute, expected",
    [
        (lambda: metrics.forgetting(FIXTURE, reference="learned"), 0.25),
        (lambda: metrics.forgetting(FIXTURE, reference="max"), 0.28333),
        (lambda: metrics.bwt(FIXTURE), -0.25),
        (lambda: metrics.fwt(FIXTURE, FIXTURE_BASE), 0.23),
        (lambda: metrics.forget_avg(FIXTURE), 0.17778),
        (lambda: metrics.bwt_avg(FIXTURE), -0.16667),
        (lambda: metrics.fwt_avg_k(FIXTURE, FIXTURE_BASE, 2), 0.10),
        (lambda: metrics.fwt_avg_k(FIXTURE, FIXTURE_BASE, 3), 0.02),
        (lambda: metrics.final_average(FIXTURE), 0.67),
    ],
    ids=["forgetting-learned", "forgetting-max", "bwt", "fwt", "forget_avg", "bwt_avg",
         "fwt_avg_k2", "fwt_avg_k3", "final_average"],
)
def test_fixture_values(compute, expected):
    assert compute() == pytest.approx(expected, abs=1e-5)


# --------------------------------------------------------------------------------------------
# 4 x 4 by hand (the fixture matrix)
# --------------------------------------------------------------------------------------------
# P[0] = 0.80
# P[1] = (0.60 + 0.85) / 2        = 0.725
# P[2] = (0.90 + 0.65 + 0.90) / 3 = 2.45 / 3 = 0.816667
# P[3] = (0.50 + 0.70 + 0.60 + 0.88) / 4 = 2.68 / 4 = 0.67
FIXTURE_P = [0.8, 0.725, 2.45 / 3, 0.67]


def test_average_seen_4x4():
    close(metrics.average_seen(FIXTURE), FIXTURE_P)


def test_cft_4x4():
    # step 0: (0.30 + 0.20 + 0.10) / 3 = 0.20; step 1: (0.35 + 0.15) / 2 = 0.25; step 2: 0.25
    # CFT = (0.20 + 0.25 + 0.25) / 3 = 0.233333
    assert metrics.cft(FIXTURE) == pytest.approx(0.7 / 3, abs=1e-9)


def test_cbt_4x4():
    # (0.50 - 0.80) + (0.70 - 0.85) + (0.60 - 0.90) = -0.75; / 3 = -0.25
    assert metrics.cbt(FIXTURE) == pytest.approx(-0.25, abs=1e-9)


def test_performance_shift_4x4():
    # s=1: 0.60 - 0.80 = -0.20
    # s=2: (0.90 + 0.65) / 2 - (0.60 + 0.85) / 2 = 0.775 - 0.725 = 0.05
    # s=3: (0.50 + 0.70 + 0.60) / 3 - (0.90 + 0.65 + 0.90) / 3 = 0.60 - 0.816667 = -0.216667
    close(metrics.performance_shift(FIXTURE), [NAN, -0.2, 0.05, 0.6 - 2.45 / 3])


@pytest.mark.parametrize(
    "h, expected",
    [
        # h=0: P1-P0 = -0.075, P2-P1 = 0.091667, P3-P2 = -0.146667
        (0, [NAN, -0.075, 2.45 / 3 - 0.725, 0.67 - 2.45 / 3]),
        # h=1: p=1: P2-P0 = 0.016667; p=2: P3-P1 = -0.055; p=3: P4 does not exist
        (1, [NAN, 2.45 / 3 - 0.8, 0.67 - 0.725, NAN]),
        # h=2: p=1: P3-P0 = -0.13
        (2, [NAN, -0.13, NAN, NAN]),
        # h=3: p+h <= 3 needs p=0, but p >= 1: nothing defined
        (3, [NAN, NAN, NAN, NAN]),
    ],
)
def test_mft_4x4(h, expected):
    close(metrics.mft(FIXTURE, h), expected)


@pytest.mark.parametrize(
    "h, expected",
    [
        # h=0 is P[p] - P[p-1], equal to MFT_0
        (0, [NAN, -0.075, 2.45 / 3 - 0.725, 0.67 - 2.45 / 3]),
        # h=1: p=2: P2-P0 = 0.016667; p=3: P3-P1 = -0.055
        (1, [NAN, NAN, 2.45 / 3 - 0.8, 0.67 - 0.725]),
        # h=2: p=3: P3-P0 = -0.13
        (2, [NAN, NAN, NAN, -0.13]),
        (3, [NAN, NAN, NAN, NAN]),
    ],
)
def test_mbt_4x4(h, expected):
    close(metrics.mbt(FIXTURE, h), expected)


@pytest.mark.parametrize(
    "h, expected",
    [
        # h=0: p=1: R[1,2]-R[0,2] = 0.35-0.20 = 0.15; p=2: R[2,3]-R[1,3] = 0.25-0.15 = 0.10
        (0, [NAN, 0.15, 0.10, NAN]),
        # h=1: p=1: R[1,3]-R[0,3] = 0.15-0.10 = 0.05
        (1, [NAN, 0.05, NAN, NAN]),
        (2, [NAN, NAN, NAN, NAN]),
    ],
)
def test_donation_4x4(h, expected):
    close(metrics.donation(FIXTURE, h), expected)


@pytest.mark.parametrize(
    "h, expected",
    [
        # h=0: R[1,0]-R[0,0] = -0.20; R[2,1]-R[1,1] = 0.65-0.85 = -0.20; R[3,2]-R[2,2] = -0.30
        (0, [-0.2, -0.2, -0.3, NAN]),
        # h=1: R[2,0]-R[1,0] = 0.90-0.60 = 0.30; R[3,1]-R[2,1] = 0.70-0.65 = 0.05
        (1, [0.3, 0.05, NAN, NAN]),
        # h=2: R[3,0]-R[2,0] = 0.50-0.90 = -0.40
        (2, [-0.4, NAN, NAN, NAN]),
    ],
)
def test_reception_4x4(h, expected):
    close(metrics.reception(FIXTURE, h), expected)


def test_forgetting_by_language_4x4():
    # learned: 0.80-0.50, 0.85-0.70, 0.90-0.60
    close(metrics.forgetting_by_language(FIXTURE, "learned"), [0.3, 0.15, 0.3, NAN])
    # max: max(0.80, 0.60, 0.90)-0.50 = 0.40; max(0.30, 0.85, 0.65)-0.70 = 0.15;
    #      max(0.20, 0.35, 0.90)-0.60 = 0.30
    close(metrics.forgetting_by_language(FIXTURE, "max"), [0.4, 0.15, 0.3, NAN])


# --------------------------------------------------------------------------------------------
# 3 x 3 by hand
# --------------------------------------------------------------------------------------------
# SMALL = [[0.6, 0.2, 0.1],
#          [0.7, 0.8, 0.3],
#          [0.5, 0.6, 0.9]]
# P[0] = 0.6; P[1] = (0.7 + 0.8) / 2 = 0.75; P[2] = (0.5 + 0.6 + 0.9) / 3 = 0.666667
SMALL_P = [0.6, 0.75, 2.0 / 3]


def test_small_average_and_final():
    close(metrics.average_seen(SMALL), SMALL_P)
    # (0.5 + 0.6 + 0.9) / 3
    assert metrics.final_average(SMALL) == pytest.approx(2.0 / 3, abs=1e-9)


def test_small_cft():
    # step 0: (0.2 + 0.1) / 2 = 0.15; step 1: 0.3; CFT = (0.15 + 0.3) / 2 = 0.225
    assert metrics.cft(SMALL) == pytest.approx(0.225, abs=1e-9)


def test_small_cbt_bwt():
    # (0.5 - 0.6) + (0.6 - 0.8) = -0.3; / 2 = -0.15
    assert metrics.cbt(SMALL) == pytest.approx(-0.15, abs=1e-9)
    assert metrics.bwt(SMALL) == pytest.approx(-0.15, abs=1e-9)


def test_small_forgetting():
    # learned: (0.6-0.5 + 0.8-0.6) / 2 = 0.15
    assert metrics.forgetting(SMALL, reference="learned") == pytest.approx(0.15, abs=1e-9)
    # max: (max(0.6, 0.7)-0.5 + max(0.2, 0.8)-0.6) / 2 = (0.2 + 0.2) / 2 = 0.2
    assert metrics.forgetting(SMALL, reference="max") == pytest.approx(0.2, abs=1e-9)


def test_small_performance_shift():
    # s=1: 0.7 - 0.6 = 0.1; s=2: (0.5 + 0.6)/2 - (0.7 + 0.8)/2 = 0.55 - 0.75 = -0.2
    close(metrics.performance_shift(SMALL), [NAN, 0.1, -0.2])


def test_small_mft_mbt():
    # MFT_0: p=1: 0.75-0.6 = 0.15; p=2: 0.666667-0.75 = -0.083333
    close(metrics.mft(SMALL, 0), [NAN, 0.15, 2.0 / 3 - 0.75])
    # MFT_1: p=1: P2-P0 = 0.066667
    close(metrics.mft(SMALL, 1), [NAN, 2.0 / 3 - 0.6, NAN])
    close(metrics.mft(SMALL, 2), [NAN, NAN, NAN])
    # MBT_0 = MFT_0; MBT_1: p=2: P2-P0 = 0.066667
    close(metrics.mbt(SMALL, 0), [NAN, 0.15, 2.0 / 3 - 0.75])
    close(metrics.mbt(SMALL, 1), [NAN, NAN, 2.0 / 3 - 0.6])


def test_small_donation_reception():
    # donation_0: p=1: R[1,2]-R[0,2] = 0.3-0.1 = 0.2
    close(metrics.donation(SMALL, 0), [NAN, 0.2, NAN])
    # reception_0: R[1,0]-R[0,0] = 0.1; R[2,1]-R[1,1] = -0.2
    close(metrics.reception(SMALL, 0), [0.1, -0.2, NAN])
    # reception_1: R[2,0]-R[1,0] = 0.5-0.7 = -0.2
    close(metrics.reception(SMALL, 1), [-0.2, NAN, NAN])


def test_small_fwt():
    # (0.2 - 0.1) + (0.3 - 0.2) = 0.2; / 2 = 0.1
    assert metrics.fwt(SMALL, SMALL_BASE) == pytest.approx(0.1, abs=1e-9)


def test_small_step_averaged():
    # bwt_avg: step 1: 0.7-0.6 = 0.1; step 2: ((0.5-0.6) + (0.6-0.8)) / 2 = -0.15
    #          mean(0.1, -0.15) = -0.025
    assert metrics.bwt_avg(SMALL) == pytest.approx(-0.025, abs=1e-9)
    # forget_avg: step 1: max(0.6)-0.7 = -0.1
    #             step 2: (max(0.6, 0.7)-0.5 + max(0.2, 0.8)-0.6) / 2 = 0.2
    #             mean(-0.1, 0.2) = 0.05
    assert metrics.forget_avg(SMALL) == pytest.approx(0.05, abs=1e-9)
    # fwt_avg_k k=1: = fwt = 0.1; k=2: R[0,2]-b[2] = 0.1-0.2 = -0.1
    assert metrics.fwt_avg_k(SMALL, SMALL_BASE, 1) == pytest.approx(0.1, abs=1e-9)
    assert metrics.fwt_avg_k(SMALL, SMALL_BASE, 2) == pytest.approx(-0.1, abs=1e-9)


def test_zero_shot_cells_join_the_max_when_recorded():
    # Column 1 had zero-shot 0.9 before training, 0.8 after: max = 0.9.
    with_zero_shot = np.array([[0.6, 0.9, 0.1], [0.7, 0.8, 0.3], [0.5, 0.6, 0.9]])
    # (max(0.6, 0.7)-0.5 + max(0.9, 0.8)-0.6) / 2 = (0.2 + 0.3) / 2 = 0.25
    assert metrics.forgetting(with_zero_shot, "max") == pytest.approx(0.25, abs=1e-9)
    without = with_zero_shot.copy()
    without[np.triu_indices(3, 1)] = np.nan
    # (0.2 + (0.8-0.6)) / 2 = 0.2
    assert metrics.forgetting(without, "max") == pytest.approx(0.2, abs=1e-9)
    # forget_avg: step 1: 0.6-0.7 = -0.1; step 2: (0.2 + 0.3) / 2 = 0.25 -> mean 0.075
    assert metrics.forget_avg(with_zero_shot) == pytest.approx(0.075, abs=1e-9)
    # without zero-shot: step 2: (0.2 + 0.2) / 2 = 0.2 -> mean 0.05
    assert metrics.forget_avg(without) == pytest.approx(0.05, abs=1e-9)


# --------------------------------------------------------------------------------------------
# limits and identities
# --------------------------------------------------------------------------------------------


def test_all_ones_has_no_forgetting_and_no_backward_transfer():
    ones = np.ones((4, 4))
    assert metrics.forgetting(ones, "learned") == 0.0
    assert metrics.forgetting(ones, "max") == 0.0
    assert metrics.bwt(ones) == 0.0
    assert metrics.cbt(ones) == 0.0
    assert metrics.bwt_avg(ones) == 0.0
    assert metrics.forget_avg(ones) == 0.0
    close(metrics.performance_shift(ones), [NAN, 0, 0, 0])
    close(metrics.average_seen(ones), [1, 1, 1, 1])


def test_identity_forgets_every_earlier_language_completely():
    identity = np.eye(4)
    for reference in ("learned", "max"):
        close(metrics.forgetting_by_language(identity, reference), [1, 1, 1, NAN])
        assert metrics.forgetting(identity, reference) == pytest.approx(1.0)
    assert metrics.bwt(identity) == pytest.approx(-1.0)
    assert metrics.cbt(identity) == pytest.approx(-1.0)
    # every step drops every earlier language from 1 to 0
    assert metrics.forget_avg(identity) == pytest.approx(1.0)
    assert metrics.bwt_avg(identity) == pytest.approx(-1.0)
    assert metrics.cft(identity) == 0.0
    # P[i] = 1 / (i + 1)
    close(metrics.average_seen(identity), [1, 1 / 2, 1 / 3, 1 / 4])


def test_anchor_identities_on_random_matrices():
    rng = np.random.default_rng(7)
    for size in (2, 3, 5, 8):
        scores = rng.uniform(size=(size, size))
        base = rng.uniform(size=size)
        assert metrics.cbt(scores) == pytest.approx(metrics.bwt(scores))
        assert metrics.forgetting(scores, "learned") == pytest.approx(-metrics.bwt(scores))
        assert metrics.forgetting(scores, "max") >= metrics.forgetting(scores, "learned") - 1e-12
        assert metrics.fwt_avg_k(scores, base, 1) == pytest.approx(metrics.fwt(scores, base))
        assert metrics.final_average(scores) == pytest.approx(metrics.average_seen(scores)[-1])
        # MFT_0 and MBT_0 are both P[p] - P[p-1]
        close(metrics.mft(scores, 0), metrics.mbt(scores, 0))


def test_metrics_read_only_the_cells_they_need():
    # A joint or monolingual run records no zero-shot cells.
    lower = FIXTURE.copy()
    lower[np.triu_indices(4, 1)] = np.nan
    assert metrics.bwt(lower) == pytest.approx(-0.25)
    assert metrics.forgetting(lower, "max") == pytest.approx(0.28333, abs=1e-5)
    assert metrics.forget_avg(lower) == pytest.approx(0.17778, abs=1e-5)
    assert metrics.bwt_avg(lower) == pytest.approx(-0.16667, abs=1e-5)
    close(metrics.average_seen(lower), FIXTURE_P)
    close(metrics.mft(lower, 1), [NAN, 2.45 / 3 - 0.8, 0.67 - 0.725, NAN])
    close(metrics.reception(lower, 0), [-0.2, -0.2, -0.3, NAN])
    with pytest.raises(ValueError, match=r"cft reads .*upper triangle.*scores\[0, 1\] is nan"):
        metrics.cft(lower)
    with pytest.raises(ValueError, match=r"fwt reads .*scores\[0, 1\] is nan"):
        metrics.fwt(lower, FIXTURE_BASE)
    with pytest.raises(ValueError, match=r"donation\(h=0\) reads .*scores\[0, 2\] is nan"):
        metrics.donation(lower, 0)
    # base[0] is never read
    base = FIXTURE_BASE.copy()
    base[0] = np.nan
    assert metrics.fwt(FIXTURE, base) == pytest.approx(0.23)


# --------------------------------------------------------------------------------------------
# invalid input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function",
    [metrics.average_seen, metrics.final_average, metrics.cft, metrics.cbt,
     metrics.performance_shift, metrics.bwt, metrics.forgetting, metrics.bwt_avg,
     metrics.forget_avg],
)
def test_non_square_and_wrong_ndim_are_rejected(function):
    with pytest.raises(ValueError, match=r"must be square.*got shape \(3, 4\)"):
        function(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"must be a 2-D T x T matrix.*ndim=1"):
        function(np.ones(4))
    with pytest.raises(ValueError, match=r"must be a 2-D T x T matrix.*ndim=3"):
        function(np.ones((2, 2, 2)))


def test_missing_required_score_is_named():
    scores = FIXTURE.copy()
    scores[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"cbt reads .*scores\[3, 1\] is nan"):
        metrics.cbt(scores)
    with pytest.raises(ValueError, match=r"bwt reads .*scores\[3, 1\] is nan"):
        metrics.bwt(scores)
    with pytest.raises(ValueError, match=r"average_seen reads .*scores\[3, 1\] is nan"):
        metrics.average_seen(scores)
    diagonal = FIXTURE.copy()
    diagonal[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"forgetting\(reference='learned'\) .*scores\[1, 1\]"):
        metrics.forgetting(diagonal)
    with pytest.raises(ValueError, match=r"performance_shift reads .*scores\[1, 1\]"):
        metrics.performance_shift(diagonal)
    with pytest.raises(ValueError, match=r"mbt\(h=0\) reads .*scores\[1, 1\]"):
        metrics.mbt(diagonal, 0)


@pytest.mark.parametrize("h", [-1, 4, 10])
@pytest.mark.parametrize(
    "function", [metrics.mft, metrics.mbt, metrics.donation, metrics.reception]
)
def test_hop_out_of_range(function, h):
    expected = rf"h={h} is out of range for a 4 x 4 score matrix.*0 <= h <= T-1 = 3"
    with pytest.raises(ValueError, match=expected):
        function(FIXTURE, h)


def test_hop_must_be_an_integer():
    with pytest.raises(ValueError, match="h must be an integer hop distance"):
        metrics.mft(FIXTURE, 1.5)
    with pytest.raises(ValueError, match="h must be an integer hop distance"):
        metrics.mbt(FIXTURE, True)
    # numpy integers are fine
    close(metrics.mft(FIXTURE, np.int64(2)), [NAN, -0.13, NAN, NAN])


def test_base_of_wrong_length():
    expected = r"base must hold one pre-training score per language, shape \(4,\).*got shape \(3,\)"
    with pytest.raises(ValueError, match=expected):
        metrics.fwt(FIXTURE, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"shape \(4,\).*got shape \(2, 2\)"):
        metrics.fwt_avg_k(FIXTURE, np.ones((2, 2)), 1)
    with pytest.raises(ValueError, match=r"base\[2\] is nan"):
        metrics.fwt(FIXTURE, [0.1, 0.2, np.nan, 0.3])


def test_fwt_distance_out_of_range():
    with pytest.raises(ValueError, match=r"k=0 is out of range.*1 <= k <= T-1 = 3"):
        metrics.fwt_avg_k(FIXTURE, FIXTURE_BASE, 0)
    with pytest.raises(ValueError, match=r"k=4 is out of range"):
        metrics.fwt_avg_k(FIXTURE, FIXTURE_BASE, 4)


def test_unknown_forgetting_reference():
    with pytest.raises(ValueError, match=r"unknown forgetting reference 'best'.*'learned', 'max'"):
        metrics.forgetting(FIXTURE, reference="best")


def test_transfer_metrics_need_two_languages():
    with pytest.raises(ValueError, match=r"needs at least 2 languages"):
        metrics.bwt(np.ones((1, 1)))
    with pytest.raises(ValueError, match=r"needs at least 2 languages"):
        metrics.cft([[0.5]])
    # one language still has a seen-average
    close(metrics.average_seen([[0.5]]), [0.5])


# --------------------------------------------------------------------------------------------
# aggregation over orders
# --------------------------------------------------------------------------------------------
# order 0 = (a, b, c) with SMALL: P = 0.6, 0.75, 0.666667
# order 1 = (c, a, b) with OTHER: P = 0.5, (0.3 + 0.7)/2 = 0.5, (0.4 + 0.6 + 0.8)/3 = 0.6
OTHER = np.array(
    [
        [0.5, 0.1, 0.2],
        [0.3, 0.7, 0.4],
        [0.4, 0.6, 0.8],
    ]
)
MATRICES = [SMALL, OTHER]
ORDERS = [("a", "b", "c"), ("c", "a", "b")]


def test_per_language_shift():
    table = metrics.per_language_shift(MATRICES, ORDERS)
    assert list(table.index) == ["a", "b", "c"]
    assert list(table.columns) == ["mean", "ci_low", "ci_high", "n"]
    # a: first in order 0, so undefined there; order 1, s=1: 0.3 - 0.5 = -0.2
    # b: order 0, s=1: 0.7 - 0.6 = 0.1; order 1, s=2: (0.4+0.6)/2 - (0.3+0.7)/2 = 0.0
    # c: order 0, s=2: -0.2; first in order 1, so undefined there
    close(table["mean"].to_numpy(), [-0.2, 0.05, -0.2])
    assert table["n"].tolist() == [1, 2, 1]
    # one value: no interval; two values 0.1 and 0.0: resample means are 0, 0.05, 0.1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles are 0.0 and 0.1
    assert np.isnan(table.loc["a", "ci_low"]) and np.isnan(table.loc["a", "ci_high"])
    assert table.loc["b", "ci_low"] == pytest.approx(0.0)
    assert table.loc["b", "ci_high"] == pytest.approx(0.1)


def test_per_language_mft():
    table = metrics.per_language_mft(MATRICES, ORDERS, hops=[0, 1])
    # order 0: MFT_0 b = 0.75-0.6 = 0.15, c = 0.666667-0.75 = -0.083333; MFT_1 b = 0.066667
    # order 1: MFT_0 a = 0.5-0.5 = 0.0, b = 0.6-0.5 = 0.1; MFT_1 a = 0.6-0.5 = 0.1
    expected_mean = pd.DataFrame(
        {0: [0.0, (0.15 + 0.1) / 2, 2.0 / 3 - 0.75], 1: [0.1, 2.0 / 3 - 0.6, NAN]},
        index=pd.Index(["a", "b", "c"], name="language"),
    )
    close(table["mean"].to_numpy(), expected_mean.to_numpy())
    assert table["n"].to_numpy().tolist() == [[1, 1], [2, 1], [1, 0]]
    assert list(table.columns.names) == ["statistic", "h"]
    # sorted by mean over h, largest first: b (0.095833), a (0.05), c (-0.083333)
    assert list(metrics.sort_by_mean_over_hops(table).index) == ["b", "a", "c"]
    assert list(metrics.sort_by_mean_over_hops(table, ascending=True).index) == ["c", "a", "b"]
    # scalar MFT_h: h=0: (0 + 0.125 - 0.083333) / 3 = 0.013889; h=1: (0.1 + 0.066667) / 2
    close(metrics.average_over_languages(table).to_numpy(), [0.041667 / 3, 0.083333])


def test_per_language_mbt():
    table = metrics.per_language_mbt(MATRICES, ORDERS, hops=[0, 1])
    # MBT_0 = MFT_0; MBT_1: order 0 c = P2-P0 = 0.066667; order 1 b = 0.6-0.5 = 0.1
    close(table["mean"].to_numpy(), [[0.0, NAN], [0.125, 0.1], [2.0 / 3 - 0.75, 2.0 / 3 - 0.6]])
    assert table["n"].to_numpy().tolist() == [[1, 0], [2, 1], [1, 1]]


def test_per_language_hops_default_to_every_hop():
    table = metrics.per_language_mft(MATRICES, ORDERS)
    assert list(table["mean"].columns) == [0, 1, 2]
    # h = T-1 is never defined
    assert table["n"][2].tolist() == [0, 0, 0]


def test_per_order_values_long_table():
    table = metrics.per_order_values(MATRICES, ORDERS, "reception", hops=[1])
    # order 0: reception_1(a) = 0.5-0.7 = -0.2; order 1: reception_1(c) = 0.4-0.3 = 0.1
    rows = table[["order", "position", "language", "h"]].values.tolist()
    assert rows == [[0, 0, "a", 1], [1, 0, "c", 1]]
    close(table["value"].to_numpy(), [-0.2, 0.1])


def test_aggregation_rejects_bad_orders():
    with pytest.raises(ValueError, match="got 2 score matrices but 1 orders"):
        metrics.per_language_shift(MATRICES, ORDERS[:1])
    expected = r"orders\[1\] names 2 languages but matrices\[1\] has shape \(3, 3\)"
    with pytest.raises(ValueError, match=expected):
        metrics.per_language_shift(MATRICES, [ORDERS[0], ("a", "b")])
    with pytest.raises(ValueError, match=r"orders\[0\] repeats language\(s\) \['a'\]"):
        metrics.per_language_mft(MATRICES, [("a", "a", "c"), ORDERS[1]])
    with pytest.raises(ValueError, match=r"orders\[0\] is the string 'abc'"):
        metrics.per_language_mbt(MATRICES, ["abc", ORDERS[1]])
    with pytest.raises(ValueError, match=r"h=3 is out of range for a 3 x 3 score matrix"):
        metrics.per_language_mft(MATRICES, ORDERS, hops=range(10))
    with pytest.raises(ValueError, match=r"matrices\[1\] must be square"):
        metrics.per_language_shift([SMALL, np.ones((3, 2))], ORDERS)
    with pytest.raises(ValueError, match="unknown metric 'cbt'"):
        metrics.per_order_values(MATRICES, ORDERS, "cbt")
    with pytest.raises(ValueError, match="no score matrices given"):
        metrics.per_language_shift([], [])


# --------------------------------------------------------------------------------------------
# uncertainty
# --------------------------------------------------------------------------------------------


def test_bootstrap_single_value_has_no_interval():
    mean, low, high = metrics.bootstrap_ci([0.42])
    assert mean == 0.42 and np.isnan(low) and np.isnan(high)


def test_bootstrap_constant_values_have_zero_width():
    assert metrics.bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))


def test_bootstrap_binary_values():
    # Resample means of five 0s and five 1s follow Binomial(10, 0.5) / 10:
    # P(mean <= 0.1) = 0.011 < 0.025 < P(mean <= 0.2) = 0.055, so the 95% interval is [0.2, 0.8].
    mean, low, high = metrics.bootstrap_ci([0] * 5 + [1] * 5)
    assert (mean, low, high) == pytest.approx((0.5, 0.2, 0.8))
    # a narrower confidence gives a narrower interval
    _, low_80, high_80 = metrics.bootstrap_ci([0] * 5 + [1] * 5, confidence=0.5)
    assert low_80 > 0.2 and high_80 < 0.8


def test_bootstrap_is_seeded():
    values = [0.1, 0.5, 0.2, 0.9, 0.4]
    first = metrics.bootstrap_ci(values, n_resamples=500, seed=3)
    assert metrics.bootstrap_ci(values, n_resamples=500, seed=3) == first
    assert metrics.bootstrap_ci(values, n_resamples=500, seed=4) != first
    assert first[1] < first[0] < first[2]


def exact_bootstrap_quantiles(values, quantiles):
    """The quantiles of the exact bootstrap distribution of the mean (every one of the n^n
    equally likely resamples enumerated): what the percentile interval estimates."""
    array = np.asarray(values, dtype=float)
    grid = np.array(np.meshgrid(*[np.arange(array.size)] * array.size)).reshape(array.size, -1)
    means = np.sort(array[grid].mean(axis=0))
    cumulative = np.arange(1, means.size + 1) / means.size
    return [float(means[np.searchsorted(cumulative, q - 1e-12)]) for q in quantiles]


def test_bootstrap_pinned_numbers():
    values = [0.1, 0.5, 0.2, 0.9, 0.4]
    # The exact bootstrap distribution (5^5 resamples) has its 2.5% and 97.5% quantiles at 0.2
    # and 0.68 (means of five of the values are multiples of 0.02), its 5% and 95% at 0.22 and 0.64.
    assert exact_bootstrap_quantiles(values, [0.025, 0.975]) == pytest.approx([0.2, 0.68])
    assert exact_bootstrap_quantiles(values, [0.05, 0.95]) == pytest.approx([0.22, 0.64])
    # 10,000 resamples land on them; 2,000 with seed 3 come out one grid step short at the top.
    assert metrics.bootstrap_ci(values) == pytest.approx((0.42, 0.2, 0.68), abs=1e-12)
    assert metrics.bootstrap_ci(values, confidence=0.9, seed=7, n_resamples=5000) == pytest.approx(
        (0.42, 0.22, 0.64), abs=1e-12)
    assert metrics.bootstrap_ci(values, n_resamples=2000, seed=3) == pytest.approx((0.42, 0.2, 0.66), abs=1e-12)
    # Eight values: the exact quantiles are 0.2375 and 0.61625 (by convolution of the resample
    # sum's distribution); seed 11's 10,000 resamples give 0.2375 and 0.62125.
    eight = [0.31, 0.12, 0.58, 0.44, 0.27, 0.93, 0.05, 0.66]
    assert metrics.bootstrap_ci(eight, seed=11) == pytest.approx((0.42, 0.2375, 0.62125), abs=1e-12)


def bca_by_hand(values, *, n_resamples, confidence, seed):
    """BCa interval of the mean written out from Efron and Tibshirani (1993), eq. 14.10-14.15, on
    the resamples bootstrap_ci draws (numpy's default_rng(seed), one n_resamples x n block)."""
    from statistics import NormalDist

    normal = NormalDist()
    x = np.asarray(values, dtype=float)
    n = x.size
    means = x[np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))].mean(axis=1)
    theta = x.mean()
    # bias: the share of resample means below the estimate (ties count half, as scipy does)
    z0 = normal.inv_cdf((np.sum(means < theta) + np.sum(means <= theta)) / (2 * n_resamples))
    # acceleration from the jackknife means (each value left out once)
    jackknife = (x.sum() - x) / (n - 1)
    spread = jackknife.mean() - jackknife
    acceleration = np.sum(spread ** 3) / (6 * np.sum(spread ** 2) ** 1.5)
    tails = []
    for z in (normal.inv_cdf((1 - confidence) / 2), normal.inv_cdf((1 + confidence) / 2)):
        tails.append(normal.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z))))
    low, high = np.quantile(means, tails)
    return theta, low, high


@pytest.mark.parametrize("values, seed", [
    ([0.1, 0.5, 0.2, 0.9, 0.4], 3),
    ([0.31, 0.12, 0.58, 0.44, 0.27, 0.93, 0.05, 0.66], 11),
    ([0.02, 0.03, 0.05, 0.04, 0.61, 0.08], 0),  # skewed: BCa moves the interval right
])
def test_bootstrap_bca_matches_the_formulas(values, seed):
    result = metrics.bootstrap_ci(values, n_resamples=5000, seed=seed, method="BCa")
    assert result == pytest.approx(bca_by_hand(values, n_resamples=5000, confidence=0.95, seed=seed),
                                   rel=1e-9, abs=1e-12)


def test_bootstrap_bca_and_basic_against_percentile():
    skewed = [0.02, 0.03, 0.05, 0.04, 0.61, 0.08]
    mean, low, high = metrics.bootstrap_ci(skewed, n_resamples=5000)
    _, bca_low, bca_high = metrics.bootstrap_ci(skewed, n_resamples=5000, method="BCa")
    assert bca_low > low and bca_high > high  # one large value: the mean's sampling law leans right
    # basic: the percentile interval reflected about the mean
    assert metrics.bootstrap_ci(skewed, n_resamples=5000, method="basic") == pytest.approx(
        (mean, 2 * mean - high, 2 * mean - low))
    # every method: no interval from one value, zero width from constant values
    for method in metrics.BOOTSTRAP_METHODS:
        assert np.isnan(metrics.bootstrap_ci([0.42], method=method)[1:]).all()
        assert metrics.bootstrap_ci([0.3, 0.3, 0.3], method=method) == pytest.approx((0.3, 0.3, 0.3))
    assert metrics.bootstrap_ci(skewed, n_resamples=5000, method="bca")[1] == bca_low  # any case, as scipy
    with pytest.raises(ValueError, match="method must be one of percentile, basic, BCa; got 'studentized'"):
        metrics.bootstrap_ci(skewed, method="studentized")
    assert metrics.summarize(skewed, n_resamples=5000, method="BCa")["ci_low"] == pytest.approx(bca_low)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one value; got an empty sequence"):
        metrics.bootstrap_ci([])
    with pytest.raises(ValueError, match="needs finite values; got 1 NaN/inf among 3"):
        metrics.bootstrap_ci([0.1, np.nan, 0.2])
    with pytest.raises(ValueError, match="confidence must be strictly between 0 and 1, got 95"):
        metrics.bootstrap_ci([0.1, 0.2], confidence=95)


def test_summarize():
    summary = metrics.summarize([0.1, 0.3], n_resamples=2000)
    assert set(summary) == {"mean", "ci_low", "ci_high", "n"}
    assert summary["n"] == 2
    assert summary["mean"] == pytest.approx(0.2)
    # resample means are 0.1, 0.2, 0.3 with probabilities 1/4, 1/2, 1/4
    assert summary["ci_low"] == pytest.approx(0.1)
    assert summary["ci_high"] == pytest.approx(0.3)
