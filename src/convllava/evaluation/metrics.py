"""metrics.py

The public scorer API (`convllava.evaluation.metrics`). Each function follows a named reference
implementation; `protocol` picks between lmms-eval (default), VLMEvalKit and LLaVA where they differ.
"""

from __future__ import annotations

from .anls import anls, levenshtein
from .pope import POPE_PROTOCOLS, parse_yes_no, pope_metrics
from .vqa import VQA_TASKS, normalize_vqa_answer, vqa_accuracy

__all__ = [
    "POPE_PROTOCOLS",
    "VQA_TASKS",
    "anls",
    "levenshtein",
    "normalize_vqa_answer",
    "parse_yes_no",
    "pope_metrics",
    "vqa_accuracy",
]
