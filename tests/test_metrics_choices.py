"""Multiple-choice extraction and MMBench circular evaluation. lmms-eval vectors come from running lmms-eval
0.7.3's own `mmbench_evals.py` (`can_infer_option` then `can_infer_text`); VLMEvalKit cases are the dossier's."""

from __future__ import annotations

import pytest

from convllava.evaluation.metrics import extract_choice, mmbench_circular

OPTIONS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
LMMS = {
    "A": "A",
    "B.": "B",
    "(C)": "C",
    "The answer is B": "B",
    "A, B": "B",
    "The correct answer is **C**.": "",
    "A cat and a dog": "",
    "I think it is a dog": "B",
    "Answer: D": "D",
    ":C": "C",
    "C).": "C",
    "E": "E",
    "a": "",
    "Failed to obtain answer via API": "",
    "dog or cat": "",
    "It's the bird.": "C",
    "B) dog": "B",
    "A. cat": "A",
}


@pytest.mark.parametrize(("text", "expected"), list(LMMS.items()))
def test_extract_choice_matches_lmms_eval(text, expected):
    assert extract_choice(text, OPTIONS) == expected


@pytest.mark.parametrize(
    ("text", "lmms", "vlmevalkit"),
    [("A, B", "B", ""), ("The correct answer is **C**.", "", "C"), ("A cat and a dog", "", "")],
)
def test_where_the_protocols_disagree(text, lmms, vlmevalkit):
    assert extract_choice(text, "ABCD", protocol="lmms-eval") == lmms
    assert extract_choice(text, "ABCD", protocol="vlmevalkit") == vlmevalkit


def test_vlmevalkit_last_five_tokens_and_text_length_rule():
    assert extract_choice("I would pick option B", "ABCD", protocol="vlmevalkit") == "B"
    assert extract_choice("B is wrong because the picture clearly shows something else entirely", "ABCD",
                          protocol="vlmevalkit") == ""  # fmt: skip
    assert extract_choice("dog", OPTIONS, protocol="vlmevalkit") == "B"
    assert extract_choice("None of them. Z", "ABCD", protocol="vlmevalkit") == "Z"


def test_circular_evaluation_needs_every_rotation_right():
    rows = []
    for k in range(4):  # Q0: right on all 4 rotations
        rows.append({"index": 0 + k * 1_000_000, "answer": "ABCD"[k], "prediction": "ABCD"[k], "category": "c1"})
    for k in range(4):  # Q1: wrong on one rotation
        rows.append(
            {"index": 1 + k * 1_000_000, "answer": "ABCD"[k], "prediction": "ABCD"[k] if k else "D", "category": "c2"}
        )
    for k, (answer, options) in enumerate([("A", {"A": "yes", "B": "no"}), ("B", {"A": "no", "B": "yes"})]):
        rows.append(
            {"index": 2 + k * 1_000_000, "answer": answer, "prediction": "yes", "options": options, "category": "c2"}
        )
    result = mmbench_circular(rows)
    assert result["questions"] == 3
    assert result["overall"] == pytest.approx(2 / 3)
    assert result["categories"] == {"c1": 1.0, "c2": 0.5}
