"""Scores inside one matrix cell: MASSIVE slot F1, classification, language modelling."""
import math

import pytest

from nbforget import scoring

# --------------------------------------------------------------------------------------------
# MASSIVE slot conversion and slot F1
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slot_names, expected",
    [
        (["city", "city", "Other", "country", "country", "Other"],
         ["B-city", "I-city", "O", "B-country", "I-country", "O"]),
        # the same slot after an outside word opens a new span
        (["city", "Other", "city"], ["B-city", "O", "B-city"]),
        # a different slot right after a run opens a new span
        (["X", "X", "Y", "X"], ["B-X", "I-X", "B-Y", "B-X"]),
        (["Other", "Other"], ["O", "O"]),
        (["O", "date"], ["O", "B-date"]),
    ],
)
def test_massive_spans_to_bio(slot_names, expected):
    assert scoring.massive_spans_to_bio(slot_names) == expected


@pytest.mark.parametrize(
    "true_tags, pred_tags, expected",
    [
        # MASSIVE's unit cases (alexa/massive test/test_eval_metrics.py) of equal length
        ([["X", "Y"]], [["X", "Y"]], 1.0),
        # slot combination: true spans X[0:2], Z[2]; predicted X[0:2], Y[2]: P = R = 1/2
        ([["X", "X", "Z"]], [["X", "X", "Y"]], 0.5),
        # recurring slots: X, X, Y, Z against X, X, Z, Y: 2 of 4 on each side
        ([["X", "X", "Other", "X", "X", "Y", "Z"]], [["X", "X", "Other", "X", "X", "Z", "Y"]], 0.5),
        # span too long / too short: X[0:3] vs X[0:2] is wrong, Y[3:5] right: P = R = 1/2
        ([["X", "X", "X", "Y", "Y"]], [["X", "X", "Other", "Y", "Y"]], 0.5),
        ([["X", "Other", "Other", "Y", "Y"]], [["X", "X", "Other", "Y", "Y"]], 0.5),
        # number mismatch: true {X}, predicted {Y, X}: P = 1/2, R = 1, F1 = 2/3
        ([["Other"], ["X"]], [["Y"], ["X"]], 2 / 3),
    ],
)
def test_slot_f1_massive_cases(true_tags, pred_tags, expected):
    assert scoring.slot_f1(true_tags, pred_tags) == pytest.approx(expected, abs=1e-9)


def test_slot_f1_accepts_bio_input():
    assert scoring.slot_f1([["B-X", "I-X", "B-Z"]], [["B-X", "I-X", "B-Y"]]) == pytest.approx(0.5)
    # BIO keeps two adjacent spans of one type apart, which slot names cannot express:
    # true B-X B-X (two spans) vs predicted B-X I-X (one span): 0 right
    assert scoring.slot_f1([["B-X", "B-X"]], [["B-X", "I-X"]]) == 0.0


def test_slot_f1_mixed_forms_per_argument():
    # truth in BIO (as the data loaders store it), prediction as MASSIVE slot names
    true = [["B-city", "I-city", "O"], ["O", "B-date"]]
    pred = [["city", "city", "Other"], ["Other", "time"]]
    # spans: true {city, date}, predicted {city, time}: P = R = 1/2
    assert scoring.slot_f1(true, pred) == pytest.approx(0.5)


def test_slot_f1_scheme_can_be_forced():
    # read as slot names, "B-x" is a slot called "B-x": two words of it are one span
    assert scoring.to_bio([["B-x", "B-x"]], scheme="massive") == [["B-B-x", "I-B-x"]]
    assert scoring.to_bio([["B-x", "B-x"]], scheme="bio") == [["B-x", "B-x"]]
    assert scoring.to_bio([["date", "Other"]]) == [["B-date", "O"]]
    with pytest.raises(ValueError, match=r"unknown tag scheme 'iob2'"):
        scoring.slot_f1([["O"]], [["O"]], scheme="iob2")


def test_slot_f1_micro_averages_over_sentences():
    # sentence 1: 2 true spans, 2 predicted, 2 right; sentence 2: 1 true, 2 predicted, 0 right
    # P = 2/4, R = 2/3, F1 = 2 * (1/2 * 2/3) / (1/2 + 2/3) = 4/7
    true = [["a", "Other", "b"], ["c", "c", "Other"]]
    pred = [["a", "Other", "b"], ["d", "e", "Other"]]
    assert scoring.slot_f1(true, pred) == pytest.approx(4 / 7)


def test_slot_f1_rejects_bad_input():
    with pytest.raises(ValueError, match="got 2 true and 1 predicted"):
        scoring.slot_f1([["X"], ["Y"]], [["X"]])
    with pytest.raises(ValueError, match="got empty input"):
        scoring.slot_f1([], [])
    with pytest.raises(ValueError, match=r"sentence 1: 2 true tags but 3 predicted"):
        scoring.slot_f1([["X"], ["X", "Y"]], [["X"], ["X", "Y", "Y"]])
    with pytest.raises(ValueError, match=r"sentence 0: tags must be a list of word tags"):
        scoring.slot_f1(["X X"], ["X X"])


# --------------------------------------------------------------------------------------------
# intents, exact match, classification
# --------------------------------------------------------------------------------------------

# MASSIVE's exact-match case: only the second utterance has its intent and every slot right.
TRUE_INTENTS = ["A", "B", "D", "E"]
PRED_INTENTS = ["A", "B", "C", "E"]
TRUE_SLOTS = [["X", "X"], ["X", "X", "Y"], ["X"], ["X", "Z"]]
PRED_SLOTS = [["X", "Y"], ["X", "X", "Y"], ["X"], ["X", "Y"]]


def test_intent_accuracy_massive_case():
    # 3 of 4 intents right
    assert scoring.intent_accuracy(TRUE_INTENTS, PRED_INTENTS) == pytest.approx(0.75)


def test_exact_match_massive_case():
    # 1: slots differ; 2: all right; 3: intent wrong; 4: slot Z vs Y
    score = scoring.exact_match(TRUE_INTENTS, PRED_INTENTS, TRUE_SLOTS, PRED_SLOTS)
    assert score == pytest.approx(0.25)
    # a span one word too long is not an exact match
    assert scoring.exact_match(["A"], ["A"], [["X", "X", "X"]], [["X", "X", "Other"]]) == 0.0
    # the same utterance in BIO on one side and slot names on the other still matches
    assert scoring.exact_match(["A"], ["A"], [["B-X", "I-X", "O"]], [["X", "X", "Other"]]) == 1.0


def test_exact_match_rejects_bad_input():
    with pytest.raises(ValueError, match="got 4 true and 3 predicted"):
        scoring.exact_match(TRUE_INTENTS, PRED_INTENTS[:3], TRUE_SLOTS, PRED_SLOTS)
    with pytest.raises(ValueError, match="got 4 intents but 3 tagged sentences"):
        scoring.exact_match(TRUE_INTENTS, PRED_INTENTS, TRUE_SLOTS[:3], PRED_SLOTS[:3])


def test_accuracy():
    assert scoring.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == pytest.approx(0.75)
    assert scoring.accuracy(["x"], ["y"]) == 0.0


def test_macro_f1_by_hand():
    # a: TP 1, 2 true, 1 predicted -> 2*1 / (2+1) = 2/3
    # b: TP 1, 1 true, 3 predicted -> 2*1 / (1+3) = 1/2
    # c: TP 0                      -> 0
    # macro = (2/3 + 1/2 + 0) / 3 = 7/18
    assert scoring.macro_f1(["a", "a", "b", "c"], ["a", "b", "b", "b"]) == pytest.approx(7 / 18)


def test_macro_f1_counts_classes_only_predicted():
    # a: 2*1 / (2+1) = 2/3; d (never true): 0 -> (2/3 + 0) / 2 = 1/3
    assert scoring.macro_f1(["a", "a"], ["a", "d"]) == pytest.approx(1 / 3)
    assert scoring.macro_f1([0, 1, 2], [0, 1, 2]) == 1.0


def test_macro_f1_agrees_with_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y_true = [0, 1, 2, 2, 1, 0, 3, 3, 3, 1]
    y_pred = [0, 2, 2, 2, 1, 1, 3, 0, 4, 1]
    expected = sklearn_metrics.f1_score(y_true, y_pred, average="macro")
    assert scoring.macro_f1(y_true, y_pred) == pytest.approx(expected)


@pytest.mark.parametrize("function", [scoring.accuracy, scoring.intent_accuracy, scoring.macro_f1])
def test_classification_rejects_bad_input(function):
    with pytest.raises(ValueError, match="got 3 true and 2 predicted"):
        function(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="got empty input"):
        function([], [])


# --------------------------------------------------------------------------------------------
# language modelling
# --------------------------------------------------------------------------------------------


def test_mean_nll_and_perplexity():
    assert scoring.mean_nll(10.0, 4) == pytest.approx(2.5)
    assert scoring.perplexity(10.0, 4) == pytest.approx(math.exp(2.5))  # 12.182494
    assert scoring.perplexity(0.0, 5) == 1.0
    # a uniform model over 50 tokens pays ln 50 per token: perplexity 50
    assert scoring.perplexity(7 * math.log(50), 7) == pytest.approx(50.0)


def test_bits_per_byte():
    # one bit (ln 2 nats) per byte
    assert scoring.bits_per_byte(math.log(2) * 12, 12) == pytest.approx(1.0)
    # 8 bits over 4 bytes
    assert scoring.bits_per_byte(math.log(2) * 8, 4) == pytest.approx(2.0)


def test_utf8_bytes():
    assert scoring.utf8_bytes("abc") == 3
    assert scoring.utf8_bytes("héllo") == 6  # é is two bytes
    assert scoring.utf8_bytes(["日本", "a"]) == 7  # each CJK character is three bytes


def test_language_modelling_rejects_bad_input():
    with pytest.raises(ValueError, match="n_tokens must be positive; got 0"):
        scoring.perplexity(1.0, 0)
    with pytest.raises(ValueError, match="total_nll must be a finite, non-negative .* got -1.0"):
        scoring.mean_nll(-1.0, 3)
    with pytest.raises(ValueError, match="n_bytes must be positive; got 0"):
        scoring.bits_per_byte(1.0, 0)
    with pytest.raises(ValueError, match="got nan"):
        scoring.bits_per_byte(float("nan"), 3)
