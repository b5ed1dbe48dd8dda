"""anls.py

ANLS (DocVQA / InfographicVQA) exactly as lmms-eval's `api/metrics.py::anls` and the official RRC
script: whitespace-collapsed lower-case strings for the edit distance, but the length of the RAW strings'
`.upper()` as the divisor, and a score of exactly `threshold` is kept.
"""

from __future__ import annotations

from collections.abc import Sequence


def levenshtein(a: str, b: str) -> int:
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b):
        current = [j + 1]
        for i, ca in enumerate(a):
            current.append(previous[i] if ca == cb else 1 + min(previous[i], previous[i + 1], current[-1]))
        previous = current
    return previous[-1]


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    if not answers:
        raise ValueError("anls needs at least one ground-truth answer")
    pred = " ".join(prediction.strip().lower().split())
    distances = []
    for answer in answers:
        gt = " ".join(answer.strip().lower().split())
        length = max(len(answer.upper()), len(prediction.upper()))
        distances.append(0.0 if length == 0 else levenshtein(gt, pred) / length)
    score = 1 - min(distances)
    return 0.0 if score < threshold else score
