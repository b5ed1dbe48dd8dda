"""vision/

Vision towers, registered by exact name (`ConvLlavaConfig.vision_tower_type`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from transformers import PretrainedConfig

from .convnext import ConvNextVisionTower, add_convnext_stages

#: vision_tower_type -> constructor taking the vision sub-config.
VISION_TOWERS: dict[str, Callable[[PretrainedConfig], nn.Module]] = {
    "convnext": ConvNextVisionTower,
}


def build_vision_tower(tower_type: str, config: PretrainedConfig) -> nn.Module:
    try:
        builder = VISION_TOWERS[tower_type]
    except KeyError:
        raise ValueError(f"unknown vision_tower_type {tower_type!r}; known: {sorted(VISION_TOWERS)}") from None
    return builder(config)


__all__ = ["VISION_TOWERS", "ConvNextVisionTower", "add_convnext_stages", "build_vision_tower"]
