"""freezing.py

Which parts of a ConvLLaVA model train: set them by part name and log a frozen / trainable summary
(prismatic-style), so every run says exactly what it updates.
"""

from __future__ import annotations

import logging

from torch import nn

logger = logging.getLogger(__name__)

#: Part name -> attribute path on `ConvLlavaForConditionalGeneration`.
PARTS: dict[str, str] = {
    "vision_tower": "model.vision_tower",
    "projector": "model.projector",
    "language_model": "model.language_model",
    "lm_head": "lm_head",
}


def get_part(model: nn.Module, part: str) -> nn.Module:
    try:
        module: nn.Module = model
        for attr in PARTS[part].split("."):
            module = getattr(module, attr)
    except KeyError:
        raise ValueError(f"unknown model part {part!r}; known: {sorted(PARTS)}") from None
    return module


def image_newline(model: nn.Module) -> nn.Parameter | None:
    """LLaVA-1.6's newline vector (anyres models only). It lives beside the projector and trains with it."""
    return model.model.image_newline


def set_trainable(model: nn.Module, parts: dict[str, bool]) -> None:
    """`set_trainable(model, {"projector": True, "language_model": False, ...})`."""
    for part, trainable in parts.items():
        get_part(model, part).requires_grad_(trainable)
    newline = image_newline(model)
    if newline is not None and "projector" in parts:
        newline.requires_grad_(parts["projector"])


def trainable_summary(model: nn.Module) -> dict[str, dict[str, int]]:
    """Per part: trainable and total parameter counts (vision tower also per stage)."""
    summary: dict[str, dict[str, int]] = {}

    def add(name: str, module: nn.Module) -> None:
        params = list(module.parameters())
        summary[name] = {
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "total": sum(p.numel() for p in params),
        }

    for part in PARTS:
        module = get_part(model, part)
        add(part, module)
        if part == "vision_tower" and hasattr(module, "stages"):
            add("vision_tower.stem", module.embeddings)
            for index, stage in enumerate(module.stages):
                add(f"vision_tower.stage{index}", stage)
    newline = image_newline(model)
    if newline is not None:
        summary["image_newline"] = {
            "trainable": newline.numel() if newline.requires_grad else 0,
            "total": newline.numel(),
        }
    return summary


def log_trainable_summary(model: nn.Module, log: logging.Logger = logger) -> dict[str, dict[str, int]]:
    """Log one line per part: 🔥 trainable, 🥶 frozen, or ◐ partly trainable."""
    summary = trainable_summary(model)
    for name, counts in summary.items():
        trainable, total = counts["trainable"], counts["total"]
        mark = (
            "🔥 trainable" if trainable == total and total else "🥶 frozen" if trainable == 0 else "◐ partly trainable"
        )
        log.info("%-26s %s (%s / %s parameters)", name, mark, f"{trainable:,}", f"{total:,}")
    return summary
