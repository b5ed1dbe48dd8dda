"""checks.py

What the demo's headline scores do not show. `image_dependence`: does a trained model read its image? It scores
held-out answers twice -- with the question's own image and with another scene's -- and reports the mean negative
log-likelihood per answer token of both. A model that ignores the image gives equal numbers (the failure the
demo's first versions had); the gap is how much the image tells it. `scores_by_category`: a held-out score split
by the kind of question (VQA: counting, the colour of a shape, the shape of a colour; grounding and the binding
diagnostic: the objects in the scene), each part scored by the benchmark's own scorer. `answers_for_image`: every
held-out question about one image with the evaluation's answer and whether the benchmark's scorer counts it right
(the report's sample, beside its one chat answer).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import islice
from pathlib import Path
from typing import Any

from ..jsonl import iter_jsonl
from .synthetic import EVAL_TASKS, box_text

#: The metric that grades one question of each held-out task right (1) or wrong (0); POPE's headline F1 does not.
ROW_METRIC = {"textvqa": "accuracy", "pope": "accuracy", "refcoco": "acc@0.5"}


def image_dependence(pipeline: Any, data: Path, kinds: tuple[str, ...] = ("vqa", "pope", "text"),
                     per_kind: int = 20) -> dict[str, float]:  # fmt: skip
    """{"own_image_nll", "other_image_nll", "answers"} over the first `per_kind` rows of each held-out set, each
    asked with the prompt of the task that evaluates it."""
    from ..evaluation.tasks import get_task
    from ..inference.pipeline import as_request

    rows = []
    for kind in kinds:
        prompt = get_task(EVAL_TASKS[kind]).prompt
        rows += [(prompt(row), row) for _, row in islice(iter_jsonl(data / "eval" / f"{kind}.jsonl"), per_kind)]
    if len(rows) < 2:
        raise ValueError(f"image_dependence needs at least 2 held-out rows in {data / 'eval'}")
    totals = {"own": [0.0, 0], "other": [0.0, 0]}
    for i, (prompt, row) in enumerate(rows):
        other = rows[(i + 1) % len(rows)][1]["image"]
        other = other if other != row["image"] else rows[(i + 2) % len(rows)][1]["image"]
        for key, image in (("own", row["image"]), ("other", other)):
            request = as_request(prompt, [str(data / "images" / image)])
            logprob, tokens, _ = pipeline.loglikelihood(request, " " + row["answer"])
            totals[key][0] -= logprob
            totals[key][1] += tokens
    result: dict[str, Any] = {f"{k}_image_nll": round(v[0] / v[1], 4) for k, v in totals.items()}
    result["answers"] = len(rows)
    return result


def scores_by_category(data: Path, eval_dir: Path, name: str = "vqa") -> dict[str, dict[str, Any]]:
    """{category: {"n", <the task's metrics>}} for the saved predictions of held-out set `name`, split by each
    row's `category` field (rows without one fall under "all")."""
    from ..evaluation.runner import saved_rows, score_predictions

    category = {
        str(row["question_id"]): row.get("category", "all") for _, row in iter_jsonl(data / "eval" / f"{name}.jsonl")
    }
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in saved_rows(eval_dir / name):
        groups[category[str(row["id"])]].append(row)
    return {c: {"n": len(rows), **score_predictions(EVAL_TASKS[name], rows)} for c, rows in sorted(groups.items())}


def answers_for_image(data: Path, eval_dir: Path, image: str) -> list[dict[str, Any]]:
    """[{"set", "question", "answer", "expected", "right"}] for every held-out question about `image`, from the
    evaluation's saved predictions in `eval_dir`, in the order of `EVAL_TASKS`."""
    from ..evaluation.runner import saved_rows, score_predictions

    turns = []
    for name, task in EVAL_TASKS.items():
        asked = {
            str(r["question_id"]): r for _, r in iter_jsonl(data / "eval" / f"{name}.jsonl") if r["image"] == image
        }
        for row in saved_rows(eval_dir / name):
            if (q := asked.get(str(row["id"]))) is None:
                continue
            right = score_predictions(task, [row])[ROW_METRIC[task]] == 1.0
            question, expected = (
                (q["question"], q["answer"]) if "question" in q else (q["expression"], box_text(q["box"]))
            )
            turns.append({"set": name, "question": question, "answer": row["prediction"], "expected": expected,
                          "right": right})  # fmt: skip
    return turns
