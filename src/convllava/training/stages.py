"""stages.py

Apply a stage's `TrainableParts` to a model (requires_grad), and build the AdamW parameter groups with
the optional per-module learning rates (projector, vision tower). Biases and norms get no weight decay.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..models.freezing import get_part, log_trainable_summary, set_trainable
from .config import TrainableParts, TrainConfig

logger = logging.getLogger(__name__)


def apply_trainable_parts(model: nn.Module, parts: TrainableParts) -> dict[str, dict[str, int]]:
    """Freeze everything, then unfreeze what the stage trains; log and return the summary."""
    model.requires_grad_(False)
    if parts.vision_from_stage is not None:
        get_part(model, "vision_tower").unfreeze_stages(parts.vision_from_stage)
    set_trainable(
        model, {"projector": parts.projector, "language_model": parts.language_model, "lm_head": parts.lm_head}
    )
    return log_trainable_summary(model, logger)


def _no_decay(name: str, param: torch.nn.Parameter) -> bool:
    return param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: (module lr) x (decay / no decay), trainable parameters only, empty groups dropped."""
    module_lr = {
        "model.projector.": config.projector_lr,
        "model.vision_tower.": config.vision_tower_lr,
    }
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = config.learning_rate
        for prefix, value in module_lr.items():
            if value is not None and prefix in name:  # `in`: PEFT wraps names with a prefix
                lr = value
        decay = 0.0 if _no_decay(name, param) else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    if not groups:
        raise ValueError("no parameter trains in this stage; check `trainable` in the config")
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]
