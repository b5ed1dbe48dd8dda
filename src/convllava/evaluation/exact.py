"""exact.py

Exact-match style scorers: SEED-Bench, RealWorldQA, GQA and ScienceQA, each under lmms-eval (default),
LLaVA and VLMEvalKit rules where they differ, plus lmms-eval's generic `exact_match` and its newer
multiple-choice extractor `extract_mcq_answer` (`_task_utils/mcq_extract.py`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_PROTOCOLS = ("lmms-eval", "llava", "vlmevalkit")
_ANSWER_PHRASES = ("the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
                   "best answer is", "the correct option is", "correct option is", "the best option is",
                   "best option is", "the choice is", "choice is", "the correct choice is", "correct choice is",
                   "i choose", "i select", "i pick", "my answer is", "my choice is", "옵션", "정답은", "답은", "답:",
                   "答案是", "答案为", "选", "答えは")  # fmt: skip
_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4, "right_paren": 3,
             "space": 2, "fallback": 0}  # fmt: skip
_SQA_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def _check(protocol: str) -> None:
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(_PROTOCOLS)}, not {protocol!r}")


def exact_match(prediction: str, reference: str, ignore_case: bool = True, ignore_punctuation: bool = True) -> float:
    """lmms-eval `exact_match_hf_evaluate`: optional lower-casing and deletion of ASCII punctuation; no
    whitespace collapsing."""
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        prediction, reference = prediction.translate(_PUNCT_TABLE), reference.translate(_PUNCT_TABLE)
    return float(prediction == reference)


def extract_mcq_answer(response: str, choices: Sequence[str] = "ABCDEFGH") -> str:
    """lmms-eval's priority-ranked letter extractor: the best format wins, then the latest position."""
    if not response or not response.strip():
        return ""
    text = response.strip()
    for char in ",.!?;:'\"":
        text = text.strip(char)
    text = f" {text} "
    found: list[tuple[str, int, str]] = []
    for fmt, pattern in (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"), ("right_paren", "{})"),
                         ("space", "{} ")):  # fmt: skip
        found += [(c, text.rfind(pattern.format(c)), fmt) for c in choices if pattern.format(c) in text]
    lowered = text.lower()
    for phrase in _ANSWER_PHRASES:
        idx = lowered.find(phrase)
        if idx != -1:
            after = idx + len(phrase)
            found += [(c, text.find(c, after), "phrase") for c in choices if text.find(c, after) != -1]
    stripped = text.strip()
    for c in choices:
        if stripped.startswith(c) and (len(stripped) == 1 or not stripped[1].isalpha()):
            found.append((c, 0, "start"))
        if stripped.endswith(c) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            found.append((c, len(text) - 1, "end"))
    if not found:
        found = [(c, text.rfind(c), "fallback") for c in choices if c in text]
    if not found:
        return ""
    return max(found, key=lambda x: (_PRIORITY[x[2]], x[1]))[0]  # max keeps the first of equal keys, like sort


def seed_correct(prediction: str, answer: str, protocol: str = "lmms-eval") -> bool:
    """SEED-Bench: lmms-eval compares the first character of the stripped output; LLaVA the whole output."""
    _check(protocol)
    pred = prediction.strip()
    if protocol == "llava":
        return pred == answer
    if len(pred) > 1:
        pred = pred[0]
    return pred.lower().strip() == answer.lower().strip()


def realworldqa_correct(prediction: str, answer: str, protocol: str = "lmms-eval") -> bool:
    """RealWorldQA (current lmms-eval): letters through `extract_mcq_answer`, open answers lower-cased with a
    trailing full stop removed."""
    _check(protocol)
    gt = answer.strip()
    if gt.upper() in ("A", "B", "C", "D"):
        return extract_mcq_answer(prediction, "ABCD") == gt.upper()
    return prediction.lower().strip().rstrip(".") == gt.lower()


def gqa_correct(prediction: str, answer: str, protocol: str = "lmms-eval") -> bool:
    """GQA: lmms-eval exact match ignoring case and punctuation; LLaVA `rstrip('.').lower()` then raw equality;
    VLMEvalKit stripped, lower-cased equality."""
    _check(protocol)
    if protocol == "llava":
        return prediction.rstrip(".").lower() == answer
    if protocol == "vlmevalkit":
        return prediction.strip().lower() == answer.strip().lower()
    return exact_match(prediction.strip(), answer) == 1.0


def parse_scienceqa(prediction: str, num_choices: int, protocol: str = "lmms-eval") -> str:
    """The option letter a ScienceQA answer picks ("" if none). LLaVA's regex `The answer is ([A-Z]).`
    keeps its unescaped dot and needs exactly one hit."""
    _check(protocol)
    letters = string.ascii_uppercase[:num_choices]
    pred = prediction.strip() if protocol == "lmms-eval" else prediction
    if protocol == "lmms-eval":
        if pred.upper() in letters and len(pred) == 1:
            return pred.upper()
        if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
            return pred[0] if pred[0] in letters else ""
        return ""
    if pred in "ABCDE" and len(pred) == 1:
        letter = pred
    elif len(pred) >= 3 and pred[0] in "ABCDE" and pred[1:3] == ". ":
        letter = pred[0]
    else:
        hits = _SQA_ANSWER_IS.findall(pred)
        letter = hits[0] if len(hits) == 1 else ""
    return letter if letter in letters else ""


def scienceqa_correct(prediction: str, answer: int, num_choices: int, protocol: str = "lmms-eval") -> bool:
    """ScienceQA-IMG: `answer` is the index of the right choice."""
    return parse_scienceqa(prediction, num_choices, protocol) == string.ascii_uppercase[answer]
