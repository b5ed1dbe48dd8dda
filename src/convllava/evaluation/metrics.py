"""metrics.py

The public scorer API (`convllava.evaluation.metrics`). Each function follows a named reference
implementation; `protocol` picks between lmms-eval (default), VLMEvalKit and LLaVA where they differ.
"""

from __future__ import annotations

from .anls import anls, levenshtein
from .boxes import box_iou, center_accuracy, original_to_padded, padded_to_original, parse_box, xywh_to_normalized
from .choices import extract_choice, mmbench_circular
from .mme import COGNITION, PERCEPTION, mme_scores, parse_mme
from .pope import POPE_PROTOCOLS, parse_yes_no, pope_metrics
from .vqa import VQA_TASKS, normalize_vqa_answer, vqa_accuracy

__all__ = [
    "COGNITION",
    "PERCEPTION",
    "POPE_PROTOCOLS",
    "VQA_TASKS",
    "anls",
    "box_iou",
    "center_accuracy",
    "extract_choice",
    "levenshtein",
    "mmbench_circular",
    "mme_scores",
    "normalize_vqa_answer",
    "original_to_padded",
    "padded_to_original",
    "parse_box",
    "parse_mme",
    "parse_yes_no",
    "pope_metrics",
    "vqa_accuracy",
    "xywh_to_normalized",
]
