"""Scorers against vectors produced by running the reference implementations themselves: lmms-eval 0.7.3
(`tasks/_task_utils/vqa_eval_metric.py`, `api/metrics.py::anls`, `tasks/pope/utils.py`) and LLaVA
(`llava/eval/eval_pope.py`, llava-torch 1.2.2.post1). VLMEvalKit's POPE rule follows its `YOrN_Extraction`."""

from __future__ import annotations

import math

import pytest

from convllava.evaluation.metrics import anls, normalize_vqa_answer, parse_yes_no, pope_metrics, vqa_accuracy

# EvalAIAnswerProcessor()(s), full path (TextVQA / VizWiz)
NORMALIZED = {
    "(A)": "",
    "A.": "",
    "one-way": "1 way",
    "left/right / up": "leftright up",
    "U.S.A.": "usa",
    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.a.a.a.a.a.a.a.",
    "Two dogs": "2 dogs",
    "It's the cat's toy": "it 's cat 's toy",
    "dont know": "don't know",
    "3.5 cm": "3.5 cm",
    "1,000": "1000",
    "yes!": "yes",
    "The answer is: none": "answer is: 0",
    "cat,dog": "catdog",
    "a,b": "ab",
    "What?": "what",
    "ten\tapples\n": "10 apples",
    "e-mail": "e mail",
    "somebody'd": "somebodyd",
    "Im here": "im here",
    "x = y + z": "x y z",
    "<b>bold</b>": "b bold b",
    "well ... ok": "well ok",
    "#1 @home": "#1 home",
}
# lmms-eval vqav2 path: no word_tokenize
NORMALIZED_VQAV2 = {
    "(A)": "",
    "A.": "",
    "one-way": "1 way",
    "left/right / up": "leftright up",
    "U.S.A.": "usa",
    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.a.a.a.a.a.a.a.",
    "Two dogs": "2 dogs",
    "It's the cat's toy": "it's cat's toy",
    "dont know": "don't know",
    "3.5 cm": "3.5 cm",
    "1,000": "1000",
    "yes!": "yes",
    "The answer is: none": "answer is: 0",
    "cat,dog": "cat dog",
    "a,b": "b",
    "What?": "what",
    "ten\tapples\n": "10 apples",
    "e-mail": "e mail",
    "somebody'd": "somebodyd",
    "Im here": "im here",
    "x = y + z": "x y z",
    "<b>bold</b>": "b bold b",
    "well ... ok": "well ok",
    "#1 @home": "#1 home",
}
# (prediction, answers, lmms-eval textvqa accuracy)
ACCURACY = [
    ["two", ["2", "2", "2", "2", "2", "2", "2", "2", "2", "2"], 1.0],
    ["2", ["2", "2", "2", "3", "3", "3", "3", "3", "3", "3"], 0.9],
    ["2", ["2", "2", "3", "3", "3", "3", "3", "3", "3", "3"], 0.6],
    ["2", ["2", "3", "3", "3", "3", "3", "3", "3", "3", "3"], 0.3],
    ["Red.", ["red", "red", "red", "red", "blue", "blue", "blue", "blue", "blue", "blue"], 1.0],
    ["blue", ["red", "red", "red", "red", "red", "red", "red", "red", "red", "red"], 0.0],
    [
        " The Coca-Cola ",
        ["coca cola", "coca cola", "coca cola", "coca cola", "coca cola", "coke", "coke", "coke", "coke", "coke"],
        1.0,
    ],
]
# (prediction, answers, lmms-eval anls)
ANLS = [
    ["helo    ", ["hello"], 0.875],
    ["s", ["ß"], 0.5],
    ["abcxyz", ["abcdef"], 0.5],
    ["Hello World", ["hello world"], 1.0],
    ["", [""], 1.0],
    ["abc", ["xyz", "abd"], 0.6666666666666667],
    ["  Total:  42 ", ["total: 42"], 1.0],
    ["invoice", ["receipt"], 0],
]
POPE_PREDS = [
    "Yes",
    "yes.",
    "No, there is not.",
    "NO",
    "nope",
    "Unknown",
    "No\nYes",
    "There is a dog.",
    " no ",
    "Yes, there is.",
    "I do not see one",
    "yes",
]
POPE_LABELS = ["yes", "yes", "no", "no", "no", "yes", "no", "yes", "no", "yes", "no", "no"]
LLAVA_PARSE = ["yes", "yes", "no", "yes", "yes", "yes", "yes", "yes", "no", "yes", "no", "yes"]
LLAVA_METRICS = {
    "accuracy": 0.6666666666666666,
    "precision": 0.5555555555555556,
    "recall": 1.0,
    "f1": 0.7142857142857143,
    "yes_ratio": 0.75,
}
LMMS_METRICS = {
    "accuracy": 0.25,
    "precision": 0.5,
    "recall": 1.0,
    "f1": 0.6666666666666666,
    "yes_ratio": 0.4166666666666667,
}


@pytest.mark.parametrize(("text", "expected"), list(NORMALIZED.items()))
def test_normalize_vqa_answer_matches_the_evalai_processor(text, expected):
    assert normalize_vqa_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), list(NORMALIZED_VQAV2.items()))
def test_vqav2_path_skips_word_tokenize(text, expected):
    assert normalize_vqa_answer(text, task="vqav2") == expected


def test_the_two_paths_differ_where_the_reference_says():
    assert normalize_vqa_answer("cat,dog") == "catdog" and normalize_vqa_answer("cat,dog", task="vqav2") == "cat dog"
    assert normalize_vqa_answer("a,b", task="vqav2") == "b"


@pytest.mark.parametrize(("prediction", "answers", "expected"), ACCURACY)
def test_vqa_accuracy_ten_choose_nine(prediction, answers, expected):
    assert vqa_accuracy(prediction, answers) == pytest.approx(expected)


@pytest.mark.parametrize(("prediction", "answers", "expected"), ANLS)
def test_anls_matches_lmms_eval(prediction, answers, expected):
    assert anls(prediction, answers) == pytest.approx(expected)


def test_pope_llava_parser_and_metrics():
    assert [parse_yes_no(p, protocol="llava") for p in POPE_PREDS] == LLAVA_PARSE
    got = pope_metrics(POPE_PREDS, POPE_LABELS, protocol="llava")
    assert got == pytest.approx(LLAVA_METRICS)


def test_pope_lmms_eval_exact_match_and_ground_truth_yes_ratio():
    got = pope_metrics(POPE_PREDS, POPE_LABELS, protocol="lmms-eval")
    assert got == pytest.approx(LMMS_METRICS)
    assert parse_yes_no("yes.", protocol="lmms-eval") == "unknown" and parse_yes_no(" No ") == "no"


def test_pope_vlmevalkit_token_rule():
    assert parse_yes_no("Yes, there is a dog.", protocol="vlmevalkit") == "yes"
    assert parse_yes_no("No.", protocol="vlmevalkit") == "no"
    assert parse_yes_no("Yes and no", protocol="vlmevalkit") == "unknown"
    assert parse_yes_no("There is a dog.", protocol="vlmevalkit") == "unknown"
    got = pope_metrics(["yes", "maybe", "no", "Yes!"], ["yes", "yes", "no", "no"], protocol="vlmevalkit")
    # unknown counts as a predicted no for precision / recall but is never a correct answer
    assert got == pytest.approx({"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5})


def test_llava_protocol_divides_unguarded_and_bad_input_is_rejected():
    assert math.isnan(pope_metrics(["no"], ["no"], protocol="llava")["precision"])
    assert pope_metrics(["no"], ["no"], protocol="lmms-eval")["precision"] == 0.0
    with pytest.raises(ValueError, match="labels must be"):
        pope_metrics(["yes"], ["maybe"])
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_yes_no("yes", protocol="gpt")
    with pytest.raises(ValueError, match="unknown VQA task"):
        normalize_vqa_answer("x", task="okvqa")
