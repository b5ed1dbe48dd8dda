"""metrics.py

The public scorer API (`convllava.evaluation.metrics`). Each function follows a named reference
implementation; `protocol` picks between lmms-eval (default), VLMEvalKit and LLaVA where they differ.
"""

from __future__ import annotations

from .anls import anls, levenshtein
from .boxes import box_iou, center_accuracy, original_to_padded, padded_to_original, parse_box, xywh_to_normalized
from .choices import extract_choice, mmbench_circular
from .exact import (
    exact_match,
    extract_mcq_answer,
    gqa_correct,
    parse_scienceqa,
    realworldqa_correct,
    scienceqa_correct,
    seed_correct,
)
from .judge import Judge, JudgeError, OpenAIJudge
from .llavabench import llavabench_aggregate, llavabench_judge, llavabench_prompt, parse_llavabench_scores
from .mme import COGNITION, PERCEPTION, mme_scores, parse_mme
from .mmmu import mmmu_open_correct, mmmu_prompt, mmmu_scores, mmmu_subject, parse_mmmu_choice, parse_mmmu_open
from .mmvet import mmvet_aggregate, mmvet_judge, mmvet_prompt, parse_mmvet_score
from .pope import POPE_PROTOCOLS, parse_yes_no, pope_metrics
from .vqa import VQA_TASKS, normalize_vqa_answer, vqa_accuracy

__all__ = [
    "COGNITION",
    "PERCEPTION",
    "POPE_PROTOCOLS",
    "VQA_TASKS",
    "Judge",
    "JudgeError",
    "OpenAIJudge",
    "anls",
    "box_iou",
    "center_accuracy",
    "exact_match",
    "extract_choice",
    "extract_mcq_answer",
    "gqa_correct",
    "levenshtein",
    "llavabench_aggregate",
    "llavabench_judge",
    "llavabench_prompt",
    "mmbench_circular",
    "mme_scores",
    "mmmu_open_correct",
    "mmmu_prompt",
    "mmmu_scores",
    "mmmu_subject",
    "mmvet_aggregate",
    "mmvet_judge",
    "mmvet_prompt",
    "normalize_vqa_answer",
    "original_to_padded",
    "padded_to_original",
    "parse_box",
    "parse_llavabench_scores",
    "parse_mme",
    "parse_mmmu_choice",
    "parse_mmmu_open",
    "parse_mmvet_score",
    "parse_scienceqa",
    "parse_yes_no",
    "pope_metrics",
    "realworldqa_correct",
    "scienceqa_correct",
    "seed_correct",
    "vqa_accuracy",
    "xywh_to_normalized",
]
