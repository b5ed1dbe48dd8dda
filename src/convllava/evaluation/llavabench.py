"""llavabench.py

LLaVA-Bench (in-the-wild): the GPT-4 review prompt, the two-score parsing under LLaVA's
`eval_gpt_review_bench.py` (`"llava"`) and lmms-eval (default, also VLMEvalKit's parser is LLaVA's), and the
relative score of `summarize_gpt_review.py`, where failed reviews ([-1, -1]) stay in the mean.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .judge import Judge

CATEGORIES = ("conv", "detail", "complex")
SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
# rule.json's prompt; identical for the three categories in LLaVA, lmms-eval and VLMEvalKit.
RULE_PROMPT = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question displayed above. The user asks the question on observing an image. For your reference, the visual content in the image is represented with a few sentences describing the image. \n"
    "Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n"
    "Please first output a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space.\n"
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented does not affect your judgment."
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def llavabench_prompt(caption: str | Sequence[str], question: str, reference: str, prediction: str) -> str:
    """The review request: context (captions joined by newlines), question, the GPT-4 answer as Assistant 1
    and the model's as Assistant 2."""
    context = caption if isinstance(caption, str) else "\n".join(caption)
    role = "Assistant"
    return (f"[Context]\n{context}\n\n[Question]\n{question}\n\n[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{prediction}\n\n[End of {role} 2]\n\n[System]\n{RULE_PROMPT}\n\n")  # fmt: skip


def parse_llavabench_scores(review: str, protocol: str = "lmms-eval") -> list[float]:
    """[reference score, model score], or [-1, -1] when the first line does not give them.

    LLaVA / VLMEvalKit: the first line, commas made spaces, must split on " " into exactly two floats ("8, 7"
    fails). lmms-eval: the first two numbers of the stripped first line ("Assistant 1: 8" gives [1, 8]).
    """
    if protocol in ("llava", "vlmevalkit"):
        parts = review.split("\n")[0].replace(",", " ").split(" ")
        try:
            return [float(parts[0]), float(parts[1])] if len(parts) == 2 else [-1.0, -1.0]
        except ValueError:
            return [-1.0, -1.0]
    if protocol != "lmms-eval":
        raise ValueError(f"protocol must be 'lmms-eval', 'llava' or 'vlmevalkit', not {protocol!r}")
    first = review.strip().split("\n")[0].replace(",", " ").replace(";", " ")
    numbers = _NUMBER.findall(first)
    return [float(numbers[0]), float(numbers[1])] if len(numbers) >= 2 else [-1.0, -1.0]


def llavabench_judge(judge: Judge, caption: str | Sequence[str], question: str, reference: str, prediction: str,
                     protocol: str = "lmms-eval") -> tuple[list[float], str]:  # fmt: skip
    """Ask the judge once (temperature 0.2, 1024 tokens, LLaVA's system message); returns (scores, review)."""
    prompt = llavabench_prompt(caption, question, reference, prediction)
    review = judge.complete(prompt, system=SYSTEM, temperature=0.2, max_tokens=1024)
    return parse_llavabench_scores(review, protocol), review


def _relative(pairs: list[Sequence[float]]) -> dict[str, float]:
    n = len(pairs)
    ref, model = (round(sum(float(p[i]) for p in pairs) / n, 3) for i in (0, 1))
    return {"relative": round(model / ref * 100, 1), "reference": round(ref * 10, 1), "model": round(model * 10, 1)}


def llavabench_aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Rows of `scores` ([ref, model]) and optional `category` -> relative score overall ("all") and per category."""
    groups: dict[str, list[Sequence[float]]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row["scores"])
        if row.get("category"):
            groups[str(row["category"])].append(row["scores"])
    if not groups:
        raise ValueError("llavabench_aggregate needs at least one reviewed row")
    return {k: _relative(v) for k, v in sorted(groups.items())}
