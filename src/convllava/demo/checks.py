"""checks.py

Does a trained model read its image? `image_dependence` scores held-out answers twice -- with the question's own
image and with another scene's -- and reports the mean negative log-likelihood per answer token of both. A
model that ignores the image gives equal numbers (the failure the demo's first versions had); the gap is how much
the image tells it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .synthetic import EVAL_TASKS


def image_dependence(pipeline: Any, data: Path, kinds: tuple[str, ...] = ("vqa", "pope", "text"),
                     per_kind: int = 20) -> dict[str, float]:  # fmt: skip
    """{"own_image_nll", "other_image_nll", "answers"} over the first `per_kind` rows of each held-out set, each
    asked with the prompt of the task that evaluates it."""
    from ..evaluation.tasks import get_task
    from ..inference.pipeline import as_request

    rows = []
    for kind in kinds:
        lines = (data / "eval" / f"{kind}.jsonl").read_text().splitlines()[:per_kind]
        rows += [(get_task(EVAL_TASKS[kind]).prompt, json.loads(line)) for line in lines]
    if len(rows) < 2:
        raise ValueError(f"image_dependence needs at least 2 held-out rows in {data / 'eval'}")
    totals = {"own": [0.0, 0], "other": [0.0, 0]}
    for i, (prompt, row) in enumerate(rows):
        other = rows[(i + 1) % len(rows)][1]["image"]
        other = other if other != row["image"] else rows[(i + 2) % len(rows)][1]["image"]
        for key, image in (("own", row["image"]), ("other", other)):
            request = as_request(prompt(row), [str(data / "images" / image)])
            logprob, tokens, _ = pipeline.loglikelihood(request, " " + row["answer"])
            totals[key][0] -= logprob
            totals[key][1] += tokens
    result: dict[str, Any] = {f"{k}_image_nll": round(v[0] / v[1], 4) for k, v in totals.items()}
    result["answers"] = len(rows)
    return result
