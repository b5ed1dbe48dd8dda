"""pope.py

POPE yes/no parsing and metrics under the three references, which disagree on verbose answers:

| protocol | parse | yes_ratio | zero division |
|---|---|---|---|
| `lmms-eval` (default) | exact `output.lower().strip()` == "yes" / "no", else unknown | share of **ground-truth** yes | 0 |
| `llava` (`eval_pope.py`) | text before the first ".", commas removed, split on " "; "no" if a word is "No", "not" or "no", else "yes" | share of predicted yes | NaN (the reference divides unguarded) |
| `vlmevalkit` (`YOrN_Extraction`) | VQA punctuation processing of the lower-cased text; "yes" iff "yes" is a word and "no" is not, and symmetrically; else unknown | share of predicted yes | 0 |

Precision / recall: lmms-eval counts a false negative only for an exact "no"; VLMEvalKit counts unknown as a predicted no.
Accuracy: an unknown answer is never correct. VLMEvalKit reports these as percentages; we return fractions.
"""

from __future__ import annotations

from collections.abc import Sequence

from .vqa import process_punctuation

POPE_PROTOCOLS: tuple[str, ...] = ("lmms-eval", "llava", "vlmevalkit")


def parse_yes_no(text: str, protocol: str = "lmms-eval") -> str:
    """'yes', 'no' or 'unknown' (the LLaVA parser never says unknown)."""
    if protocol == "lmms-eval":
        answer = text.lower().strip()
        return answer if answer in ("yes", "no") else "unknown"
    if protocol == "llava":
        if "." in text:
            text = text.split(".")[0]
        words = text.replace(",", "").split(" ")
        return "no" if ("No" in words or "not" in words or "no" in words) else "yes"
    if protocol == "vlmevalkit":
        words = process_punctuation(text.lower()).split()
        if "yes" in words and "no" not in words:
            return "yes"
        if "no" in words and "yes" not in words:
            return "no"
        return "unknown"
    raise ValueError(f"unknown protocol {protocol!r}; one of {POPE_PROTOCOLS}")


def _ratio(num: float, den: float, guard: bool) -> float:
    if den == 0:
        return 0.0 if guard else float("nan")
    return num / den


def pope_metrics(predictions: Sequence[str], labels: Sequence[str], protocol: str = "lmms-eval") -> dict[str, float]:
    """accuracy, precision, recall, f1, yes_ratio over raw model outputs and "yes"/"no" labels."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("pope_metrics needs at least one prediction")
    gts = [label.lower().strip() for label in labels]
    if any(g not in ("yes", "no") for g in gts):
        raise ValueError("POPE labels must be 'yes' or 'no'")
    preds = [parse_yes_no(p, protocol) for p in predictions]
    guard = protocol != "llava"
    tp = sum(p == "yes" and g == "yes" for p, g in zip(preds, gts, strict=True))
    fp = sum(p == "yes" and g == "no" for p, g in zip(preds, gts, strict=True))
    if protocol == "lmms-eval":
        fn = sum(p == "no" and g == "yes" for p, g in zip(preds, gts, strict=True))
    else:  # llava never says unknown; VLMEvalKit counts unknown as a predicted no
        fn = sum(p != "yes" and g == "yes" for p, g in zip(preds, gts, strict=True))
    precision, recall = _ratio(tp, tp + fp, guard), _ratio(tp, tp + fn, guard)
    f1 = _ratio(2 * precision * recall, precision + recall, guard)
    accuracy = sum(p == g for p, g in zip(preds, gts, strict=True)) / len(gts)
    yes_source = gts if protocol == "lmms-eval" else preds
    yes_ratio = sum(x == "yes" for x in yes_source) / len(gts)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yes_ratio}
