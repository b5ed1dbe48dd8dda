"""mmmu.py

MMMU answer parsing and scoring, following the official MMMU `eval_utils.py` (protocol `"llava"`, which the
LLaVA-family papers used) and lmms-eval 0.7.3's copy (default). They differ only in the multiple-choice
parser: lmms-eval looks for `"{c} "` without a leading space and adds a `"{c}."` step before the option-text
step. Open questions keep every candidate (strings and rounded floats), as the official code does.
`protocol="vlmevalkit"` treats MMMU as multiple choice with VLMEvalKit's extraction.
"""

from __future__ import annotations

import ast
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DOMAINS: dict[str, tuple[str, ...]] = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": (
        "Basic_Medical_Science",
        "Clinical_Medicine",
        "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy",
        "Public_Health",
    ),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": (
        "Agriculture",
        "Architecture_and_Engineering",
        "Computer_Science",
        "Electronics",
        "Energy_and_Power",
        "Materials",
        "Mechanical_Engineering",
    ),
}
MC_PROMPT = "Answer with the option's letter from the given choices directly."
OPEN_PROMPT = "Answer the question using a single word or phrase."
_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_NUMBER_PATTERNS = (
    re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"),
    re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),
    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"),
)


def mmmu_options(options: str | Sequence[str]) -> dict[str, str]:
    """Letter -> option text; the HF dataset stores `options` as the string repr of a list."""
    if isinstance(options, str):
        options = ast.literal_eval(options)
    return {chr(ord("A") + i): str(o) for i, o in enumerate(options)}


def mmmu_prompt(question: str, question_type: str, options: str | Sequence[str] = ()) -> str:
    """lmms-eval's `construct_prompt` (`<image k>` placeholders stay literal)."""
    if question_type == "multiple-choice":
        listed = "\n".join(f"{k}. {v}" for k, v in mmmu_options(options).items())
        return f"{question}\n{listed}\n\n{MC_PROMPT}"
    return f"{question}\n\n{OPEN_PROMPT}"


def mmmu_subject(sample_id: str) -> str:
    """`validation_Art_Theory_12` -> `Art_Theory`."""
    split = sample_id.split("_")[0]
    match = re.match(rf"^{re.escape(split)}_(.+?)_\d+$", sample_id)
    if match is None:
        raise ValueError(f"MMMU id {sample_id!r} is not of the form '<split>_<Subject>_<n>'")
    return match.group(1)


def parse_mmmu_choice(
    response: str, options: Mapping[str, str], protocol: str = "lmms-eval", rng: random.Random | None = None
) -> str:
    """The letter an answer picks; with no candidate a random letter, as both references do (seed 42)."""
    if protocol == "vlmevalkit":
        from .choices import extract_choice

        return extract_choice(response, dict(options), protocol="vlmevalkit")
    if protocol not in ("lmms-eval", "llava"):
        raise ValueError(f"protocol must be 'lmms-eval', 'llava' or 'vlmevalkit', not {protocol!r}")
    rng = rng or random.Random(42)
    choices = list(options)
    for char in ",.!?;:'":
        response = response.strip(char)
    response = f" {response} "
    mode = "bracket"
    candidates = [c for c in choices if f"({c})" in response]
    if not candidates:
        mode = "letter"
        space = " " if protocol == "llava" else ""
        candidates = [c for c in choices if f"{space}{c} " in response]
    if not candidates and protocol == "lmms-eval":
        candidates = [c for c in choices if f"{c}." in response]
    if not candidates and len(response.split()) > 5:
        mode = "content"
        candidates = [c for c, text in options.items() if text.lower() in response.lower()]
    if not candidates:
        return rng.choice(choices)
    if len(candidates) == 1:
        return candidates[0]
    if mode == "bracket":
        positions = [response.rfind(f"({c})") for c in candidates]
    elif mode == "letter":
        positions = [response.rfind(f" {c} ") for c in candidates]
    else:
        positions = [response.lower().rfind(options[c].lower()) for c in candidates]
    return candidates[positions.index(max(positions))]  # np.argmax: first of the maxima


def _normalize(text: str) -> list[str | float]:
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        text = text.lower()
        return [" " + text, text + " "] if len(text) == 1 else [text]


def parse_mmmu_open(response: str) -> list[str | float]:
    """Candidate answers of an open question: key tails after indicator words, plus every number in them."""
    text = response.strip().strip(".").lower()
    subs = re.split(r"\.\s(?=[A-Z])|\n", text)
    keys: list[str] = []
    indicators = list(_INDICATORS)
    for i, sub in enumerate(subs):
        if i == len(subs) - 1:
            indicators.append("=")
        shortest = None
        for indicator in indicators:
            if indicator in sub:
                tail = sub.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    if not keys:
        keys = [text]
    found = list(keys)
    for key in keys:
        for pattern in _NUMBER_PATTERNS:
            found.extend(pattern.findall(key))
    candidates: list[str | float] = []
    for item in found:
        candidates.extend(_normalize(item))
    return list(dict.fromkeys(candidates))  # de-duplicated; order does not change the verdict


def mmmu_open_correct(answer: str | Sequence[str], candidates: Iterable[str | float]) -> bool:
    """Official `eval_open`: a string gold inside a string candidate, or a float candidate equal to a gold."""
    golds: list[str | float] = []
    for gold in [answer] if isinstance(answer, str) else answer:
        golds.extend(_normalize(str(gold)))
    for cand in candidates:
        if isinstance(cand, str):
            if any(isinstance(g, str) and g in cand for g in golds):
                return True
        elif cand in golds:
            return True
    return False


def mmmu_scores(rows: Iterable[Mapping[str, Any]], protocol: str = "lmms-eval", seed: int = 42) -> dict[str, Any]:
    """Rows of id, question_type, options, answer, prediction -> overall, per-domain and per-subject accuracy.

    Accuracies are instance-weighted and rounded to 5 decimals, as lmms-eval reports them. The random fallback
    draws from one generator seeded once, in row order, like the official script.
    """
    rng = random.Random(seed)
    per_subject: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        prediction = str(row["prediction"]).strip()
        answer = row["answer"]
        if row["question_type"] == "multiple-choice":
            options = mmmu_options(row["options"])
            if protocol == "vlmevalkit" and str(answer) not in options:
                answer = "A"
            pred = parse_mmmu_choice(prediction, options, protocol, rng)
            correct = pred in answer if isinstance(answer, list) else pred == answer
        elif protocol == "vlmevalkit":  # open -> A = answer, B = "Other Answers"
            pred = parse_mmmu_choice(prediction, {"A": str(answer), "B": "Other Answers"}, protocol)
            correct = pred == "A"
        else:
            correct = mmmu_open_correct(answer, parse_mmmu_open(prediction))
        per_subject[mmmu_subject(str(row["id"]))].append(correct)

    def acc(subjects: Iterable[str]) -> dict[str, float | int]:
        hits = [x for s in subjects for x in per_subject.get(s, [])]
        return {"num": len(hits), "acc": round(sum(hits) / len(hits), 5) if hits else 0.0}

    result: dict[str, Any] = {"overall": acc(per_subject)}
    result["domains"] = {d: acc(s) for d, s in DOMAINS.items() if any(x in per_subject for x in s)}
    result["subjects"] = {s: acc([s]) for s in sorted(per_subject)}
    return result
