"""Scorers for MMMU, SEED, RealWorldQA, GQA, ScienceQA. lmms-eval vectors come from running lmms-eval 0.7.3's own
functions (`mmmu_mcq_utils`, `mmmu/utils.py`, `mcq_extract`, `seedbench/utils.py`, `scienceqa/utils.py`,
`exact_match_hf_evaluate`); the official-MMMU and LLaVA cases are the dossier's contrasts."""

from __future__ import annotations

import random

import pytest

from convllava.evaluation.metrics import (
    extract_mcq_answer,
    gqa_correct,
    mmmu_open_correct,
    mmmu_prompt,
    mmmu_scores,
    mmmu_subject,
    parse_mmmu_choice,
    parse_mmmu_open,
    parse_scienceqa,
    realworldqa_correct,
    scienceqa_correct,
    seed_correct,
)

OPTIONS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
MMMU_MC_LMMS = {
    "A": "A",
    "(B)": "B",
    "The answer is C.": "C",
    "The DNA sample shows a cat clearly": "A",
    "The correct one is B.It shows a dog": "B",
    "B. dog": "B",
    "I think (A) or maybe (C) is right": "C",
    "A or B": "B",
    "I really believe it shows a bird here": "C",
    "D.": "D",
    "(C) is right but B is better": "C",
    "c": "D",
}
MMMU_OPEN = {
    "The answer is 17.": [17.0],
    "so the result is 3,000 and thus 2.5e3": [2.0, 2500.0, 3.0],
    "x = 42": [42.0],
    "It is A": [" a", "a "],
    "Therefore, the answer is Paris.\nFinal: paris": ["paris."],
    "blue": ["blue"],
    "1/2 is the answer": ["the answer"],
}
MMMU_EVAL_OPEN = [
    ["7", "the answer is 17", False],
    ["17", "the answer is 17.", True],
    ["a", "it is a dog", True],
    ["Paris", "The capital is Paris.", True],
    [["1.5", "3/2"], "x = 1.50", True],
    ["3,000", "about 3000", True],
    ["dog", "it is a Dog", True],
]
MCQ_EXTRACT = {
    "CAT": "A",
    "E": "",
    "The answer is (B).": "B",
    "A": "A",
    "I pick C": "C",
    "Maybe A. but no, D": "D",
    "B: dog": "B",
    "answer: d": "",
    "(A) and (C)": "C",
    "C) fish": "C",
    "It is B because": "B",
    "none": "",
    "The correct answer is B, not A": "A",
}
SEED = [
    ["A", "A", True],
    ["Answer: A", "A", True],
    ["(C)", "C", False],
    [" b ", "B", True],
    ["B.", "B", True],
    ["D is right", "D", True],
    ["", "A", False],
    ["a", "A", True],
]
GQA = [
    ["Yes.", "yes", True],
    ["tshirt", "t-shirt", True],
    ["The table", "table", False],
    ["left  side", "left side", False],
    ["Left", "left", True],
    [" no", "no", True],
    ["no ", "no", True],
    ["t-shirt", "t-shirt", True],
    ["red.", "red", True],
]
SQA_LMMS = [
    ["B", 1, 3, True],
    ["b", 1, 3, True],
    ["B.", 1, 3, True],
    ["B. dog", 1, 3, True],
    ["The answer is C.", 2, 4, False],
    ["The answer is CX", 2, 4, False],
    [" C ", 2, 4, True],
    ["c.", 2, 4, False],
    ["A", 0, 2, True],
    ["Answer: A", 0, 2, False],
]
RWQA = [
    ["A", "A", True],
    ["The answer is B.", "B", True],
    ["b", "B", False],
    ["Downhill.", "downhill", True],
    ["0", "0", True],
    [" 0 ", "0", True],
    ["CAT", "A", True],
    ["E", "A", False],
]


@pytest.mark.parametrize(("text", "expected"), list(MMMU_MC_LMMS.items()))
def test_mmmu_choice_matches_lmms_eval(text, expected):
    assert parse_mmmu_choice(text, OPTIONS, "lmms-eval", rng=random.Random(0)) == expected


@pytest.mark.parametrize(
    ("text", "lmms", "official"),
    [("The DNA sample shows a cat clearly", "A", "B"), ("The correct one is B.It shows a dog", "B", "A")],
)
def test_mmmu_choice_where_lmms_eval_and_the_official_parser_differ(text, lmms, official):
    options = {"A": "dog", "B": "cat", "C": "bird", "D": "fish"}
    assert parse_mmmu_choice(text, options, "lmms-eval") == lmms
    assert parse_mmmu_choice(text, options, "llava") == official


@pytest.mark.parametrize(("text", "expected"), list(MMMU_OPEN.items()))
def test_mmmu_open_candidates_match_lmms_eval(text, expected):
    assert sorted(map(repr, parse_mmmu_open(text))) == sorted(map(repr, expected))


@pytest.mark.parametrize(("gold", "prediction", "expected"), MMMU_EVAL_OPEN)
def test_mmmu_open_scoring_matches_reference(gold, prediction, expected):
    assert mmmu_open_correct(gold, parse_mmmu_open(prediction)) is expected


def test_mmmu_prompt_subject_and_instance_weighted_aggregate():
    prompt = mmmu_prompt("Which <image 1>?", "multiple-choice", "['cat', 'dog']")
    assert (
        prompt == "Which <image 1>?\nA. cat\nB. dog\n\nAnswer with the option's letter from the given choices directly."
    )
    assert mmmu_subject("validation_Art_Theory_12") == "Art_Theory"
    with pytest.raises(ValueError, match="validation_x"):
        mmmu_subject("validation_x")
    rows = [
        {"id": "validation_Art_1", "question_type": "multiple-choice", "options": "['a', 'b']", "answer": "A", "prediction": "A"},
        {"id": "validation_Art_2", "question_type": "multiple-choice", "options": "['a', 'b']", "answer": "B", "prediction": "A"},
        {"id": "validation_Math_1", "question_type": "open", "options": "[]", "answer": "7", "prediction": "x = 7"},
    ]  # fmt: skip
    scores = mmmu_scores(rows)
    assert scores["subjects"]["Art"] == {"num": 2, "acc": 0.5}
    assert scores["domains"]["Science"] == {"num": 1, "acc": 1.0}
    assert scores["overall"] == {"num": 3, "acc": round(2 / 3, 5)}
    assert mmmu_scores(rows, protocol="vlmevalkit")["overall"]["num"] == 3


@pytest.mark.parametrize(("text", "expected"), list(MCQ_EXTRACT.items()))
def test_extract_mcq_answer_matches_lmms_eval(text, expected):
    assert extract_mcq_answer(text, "ABCD") == expected


@pytest.mark.parametrize(("prediction", "answer", "expected"), SEED)
def test_seed_first_character_rule(prediction, answer, expected):
    assert seed_correct(prediction, answer) is expected


def test_seed_llava_needs_the_exact_letter():
    assert seed_correct("Answer: A", "A", protocol="llava") is False
    assert seed_correct("A", "A", protocol="llava") is True


@pytest.mark.parametrize(("prediction", "answer", "expected"), RWQA)
def test_realworldqa(prediction, answer, expected):
    assert realworldqa_correct(prediction, answer) is expected


@pytest.mark.parametrize(("prediction", "answer", "expected"), GQA)
def test_gqa_lmms_exact_match(prediction, answer, expected):
    assert gqa_correct(prediction, answer) is expected


def test_gqa_protocols_differ():
    assert gqa_correct("Yes.", "yes", "llava") is True  # rstrip('.').lower()
    assert gqa_correct(" yes", "yes", "llava") is False  # no strip in the official eval
    assert gqa_correct(" Yes ", "yes", "vlmevalkit") is True
    assert gqa_correct("t-shirt", "tshirt", "vlmevalkit") is False
    with pytest.raises(ValueError, match="protocol"):
        gqa_correct("a", "a", "lmms")


@pytest.mark.parametrize(("prediction", "answer", "n", "expected"), SQA_LMMS)
def test_scienceqa_lmms(prediction, answer, n, expected):
    assert scienceqa_correct(prediction, answer, n) is expected


@pytest.mark.parametrize(
    ("prediction", "lmms", "llava"),
    [("b", "B", ""), ("B.", "B", ""), ("The answer is C.", "", "C"), ("The answer is CX", "", "C"),
     ("B. dog", "B", "B"), ("The answer is A. The answer is B.", "", "")],
)  # fmt: skip
def test_scienceqa_protocols_differ(prediction, lmms, llava):
    assert parse_scienceqa(prediction, 4, "lmms-eval") == lmms
    assert parse_scienceqa(prediction, 4, "llava") == llava
    assert parse_scienceqa("E", 4, "llava") == ""  # the letter must index into the choices
