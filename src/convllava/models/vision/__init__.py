"""vision/

Vision towers, registered by exact name (`ConvLlavaConfig.vision_tower_type`). A builder takes the whole
`ConvLlavaConfig` (the vision sub-config plus the feature-selection fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .base import ViTTower
from .clip import ClipVisionTower
from .convnext import ConvNextVisionTower, add_convnext_stages
from .fused import DinoSiglipVisionConfig, DinoSiglipVisionTower
from .vit import Dinov2VisionTower, SiglipVisionTower


def _convnext(config: Any) -> nn.Module:
    if config.vision_feature_layer != -1:  # (the config rejects a dense connector on it)
        raise ValueError("the ConvNeXt tower gives its last stage only: vision_feature_layer must be -1")
    return ConvNextVisionTower(config.vision_config)


def _vit(tower: type[ViTTower]) -> Callable[[Any], nn.Module]:
    def build(config: Any) -> nn.Module:
        return tower(
            config.vision_config,
            config.vision_feature_layer,
            config.vision_feature_select,
            config.dense_connector,
            config.dense_groups or None,
        )

    return build


def _dinosiglip(config: Any) -> nn.Module:
    if config.vision_feature_select != "patch":
        raise ValueError("the fused DINOv2 + SigLIP tower gives patch tokens only: vision_feature_select='patch'")
    return DinoSiglipVisionTower(config.vision_config, config.vision_feature_layer)


#: vision_tower_type -> builder taking the ConvLlavaConfig.
VISION_TOWERS: dict[str, Callable[[Any], nn.Module]] = {
    "convnext": _convnext,
    "clip": _vit(ClipVisionTower),
    "siglip": _vit(SiglipVisionTower),
    "dinov2": _vit(Dinov2VisionTower),  # also `dinov2_with_registers` configs
    "dinosiglip": _dinosiglip,  # prismatic's fused DINOv2 + SigLIP
}


def build_vision_tower(config: Any) -> nn.Module:
    try:
        builder = VISION_TOWERS[config.vision_tower_type]
    except KeyError:
        raise ValueError(
            f"unknown vision_tower_type {config.vision_tower_type!r}; known: {sorted(VISION_TOWERS)}"
        ) from None
    return builder(config)


__all__ = [
    "VISION_TOWERS",
    "ClipVisionTower",
    "ConvNextVisionTower",
    "DinoSiglipVisionConfig",
    "DinoSiglipVisionTower",
    "Dinov2VisionTower",
    "SiglipVisionTower",
    "add_convnext_stages",
    "build_vision_tower",
]
