"""MME and RefCOCO scorers against vectors produced by running lmms-eval 0.7.3's own `mme/utils.py::parse_pred_ans`
and `refcoco/utils_rec.py` (`parse_float_sequence_within`, `compute_iou`, `compute_center_accuracy`)."""

from __future__ import annotations

import pytest

from convllava.evaluation.metrics import (
    box_iou,
    center_accuracy,
    mme_scores,
    original_to_padded,
    padded_to_original,
    parse_box,
    parse_mme,
    xywh_to_normalized,
)

MME_PARSE = {
    "Yes": "yes",
    "no.": "no",
    "Not sure": "no",
    "know": "no",
    "nope": "no",
    "The answer is yes": "other",
    "y": "yes",
    "N": "no",
    "x": "other",
    " YES ": "yes",
    "Yes, it is.": "yes",
    "No, it is not": "no",
    "": "other",
    "maybe": "other",
}
BOX_PARSE = {
    "[0.61, 0.36, 0.92, 0.83]": [0.61, 0.36, 0.92, 0.83],
    "The box is [0.1,0.2,0.3,0.4].": [0.1, 0.2, 0.3, 0.4],
    "[0.1 ,0.2, 0.3, 0.4]": [0, 0, 0, 0],
    "[.5, 0.2, 0.3, 0.4]": [0, 0, 0, 0],
    "[1e-1, 0.2, 0.3, 0.4]": [0, 0, 0, 0],
    "no box here": [0, 0, 0, 0],
    "[ -0.1, 0.2, 0.3, 0.4 ] and [0.5, 0.5, 0.6, 0.6]": [-0.1, 0.2, 0.3, 0.4],
    "[1, 2, 3, 4]": [1.0, 2.0, 3.0, 4.0],
}
IOU = [
    [[0, 0, 1, 1], [0, 0, 1, 1], 1.0, True],
    [[0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5], 0.14285714285714285, True],
    [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], 0.0, False],
    [[0.15625, 0.1041667, 0.46875, 0.4166667], [0.15625, 0.203125, 0.46875, 0.4375], 0.6406251640625164, True],
    [[0, 0, 1, 1], [0, 0, 0, 1e-09], 0.0, True],
]


@pytest.mark.parametrize(("text", "expected"), list(MME_PARSE.items()))
def test_mme_parse_matches_lmms_eval(text, expected):
    assert parse_mme(text) == expected


def test_mme_official_parser_has_no_single_letter_rule():
    assert parse_mme("y", protocol="llava") == "other" and parse_mme("Not sure", protocol="llava") == "no"
    assert parse_mme("The answer is yes", protocol="vlmevalkit") == "yes"


def test_mme_scores_toy():
    rows = [
        *[{"category": "existence", "image": f"e{i}", "answer": a, "prediction": p}
          for i, pairs in enumerate([[("Yes", "yes"), ("No", "no")], [("Yes", "yes"), ("No", "yes")], [("Yes", "no"), ("No", "yes")]])
          for a, p in pairs],
        {"category": "count", "image": "c0", "answer": "Yes", "prediction": "Yes."},
        {"category": "count", "image": "c0", "answer": "No", "prediction": "no"},
        {"category": "code_reasoning", "image": "k0", "answer": "No", "prediction": "Not sure"},
        {"category": "code_reasoning", "image": "k0", "answer": "Yes", "prediction": "yes"},
    ]  # fmt: skip
    scores = mme_scores(rows)
    assert scores["categories"]["existence"]["score"] == pytest.approx((200 + 50 + 0) / 3)
    assert scores["categories"]["count"]["score"] == 200 and scores["categories"]["code_reasoning"]["score"] == 200
    assert scores["perception"] == pytest.approx(283.3333333) and scores["cognition"] == 200
    with pytest.raises(ValueError, match="two questions per image"):
        mme_scores(rows[:1])


@pytest.mark.parametrize(("text", "expected"), list(BOX_PARSE.items()))
def test_parse_box_matches_lmms_eval(text, expected):
    assert parse_box(text) == expected


def test_vlmevalkit_box_parse_is_looser():
    assert parse_box("[0.1 0.2 0.3 0.4]", protocol="vlmevalkit") == [0.1, 0.2, 0.3, 0.4]
    assert parse_box("x=.5 y=0.2 to 0.3, 0.4", protocol="vlmevalkit") == [0.5, 0.2, 0.3, 0.4]


@pytest.mark.parametrize(("gt", "pred", "iou", "center"), IOU)
def test_iou_and_center_accuracy_match_lmms_eval(gt, pred, iou, center):
    assert box_iou(gt, pred) == pytest.approx(iou)
    assert center_accuracy(gt, pred) == center


def test_zero_union_is_zero_not_a_crash():
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_padded_and_original_box_conversions():
    original = xywh_to_normalized([100, 50, 200, 150], 640, 480)
    assert original == pytest.approx([0.15625, 0.1041667, 0.46875, 0.4166667], abs=1e-6)
    padded = original_to_padded(original, 640, 480)
    assert padded == pytest.approx([0.15625, 0.203125, 0.46875, 0.4375])
    assert padded_to_original(padded, 640, 480) == pytest.approx(original)
    assert box_iou(padded, original) == pytest.approx(0.640625, abs=1e-6)  # scoring unconverted boxes costs IoU
    odd = original_to_padded([0, 0, 1, 1], 641, 480)  # odd sizes floor the offset: 80 px
    assert odd[1] == pytest.approx(80 / 641)
