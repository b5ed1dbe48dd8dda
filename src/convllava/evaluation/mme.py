"""mme.py

MME: yes/no parsing and the perception / cognition scores (per category: accuracy% + accuracy+% where
accuracy+ needs both questions of an image right; totals summed over the 10 perception and 4 cognition
categories). Parsers: lmms-eval's `parse_pred_ans` (default), the official `calculation.py`
(`protocol="llava"`: lower-case only, no y/n rule) and VLMEvalKit's token rule (unknown is wrong).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .pope import parse_yes_no

PERCEPTION: tuple[str, ...] = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION: tuple[str, ...] = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def parse_mme(text: str, protocol: str = "lmms-eval") -> str:
    """'yes', 'no' or 'other'."""
    if protocol == "vlmevalkit":
        answer = parse_yes_no(text, "vlmevalkit")
        return answer if answer != "unknown" else "other"
    if protocol == "lmms-eval":
        text = text.lower().strip().replace(".", "")
        if len(text) == 1 and text not in ("y", "n"):
            return "other"
        if text in ("y", "n"):
            return "yes" if text == "y" else "no"
    elif protocol == "llava":
        text = text.lower()
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    if text in ("yes", "no"):
        return text
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def mme_scores(rows: Iterable[Mapping[str, Any]], protocol: str = "lmms-eval") -> dict[str, Any]:
    """Rows of {category, image, answer, prediction} -> perception, cognition and per-category scores."""
    by_category: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        answer = str(row["answer"]).lower().strip().replace(".", "")
        if answer not in ("yes", "no"):
            raise ValueError(f"MME answers are yes / no, got {row['answer']!r}")
        correct = float(parse_mme(str(row["prediction"]), protocol) == answer)
        by_category[str(row["category"])][str(row["image"])].append(correct)
    categories: dict[str, dict[str, float]] = {}
    for category, images in by_category.items():
        for image, scores in images.items():
            if len(scores) != 2:
                raise ValueError(f"MME pairs two questions per image; {category}/{image} has {len(scores)}")
        acc = sum(sum(s) for s in images.values()) / (2 * len(images)) * 100
        acc_plus = sum(sum(s) == 2 for s in images.values()) / len(images) * 100
        categories[category] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus}
    return {
        "perception": sum(v["score"] for c, v in categories.items() if c in PERCEPTION),
        "cognition": sum(v["score"] for c, v in categories.items() if c in COGNITION),
        "categories": categories,
    }
