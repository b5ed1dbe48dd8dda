"""fused.py

prismatic's fused DINOv2 + SigLIP vision backbone (`dinosiglip`): both ViTs see the same image, each normalised
with its own mean / std, and their second-to-last-layer patch tokens are concatenated on the channels (DINOv2-L
with registers + SigLIP-so400m at 384 px: 729 tokens of 1024 + 1152 = 2176 channels). The two need the same patch
grid (the same patch size).

The processor gives this tower un-normalised pixels in [0, 1] (mean 0, std 1); the tower normalises a copy for
each branch, as prismatic's `DinoSigLIPImageTransform` does with its two transforms. `DinoSiglipVisionConfig`
holds the two sub-configs and the two normalisations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, Dinov2WithRegistersConfig, PretrainedConfig, SiglipVisionConfig

from ..sub_configs import as_config
from .base import StagedTower
from .vit import Dinov2VisionTower, SiglipVisionTower

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class DinoSiglipVisionConfig(PretrainedConfig):
    r"""The two towers of a fused DINOv2 + SigLIP backbone.

    Args:
        dino_config: a `Dinov2WithRegistersConfig` (prismatic's `vit_large_patch14_reg4_dinov2`) or `Dinov2Config`.
        siglip_config: a `SiglipVisionConfig`.
        dino_mean, dino_std, siglip_mean, siglip_std: each branch's normalisation (ImageNet's; 0.5 / 0.5).
    """

    model_type = "dinosiglip_vision"
    sub_configs = {"dino_config": AutoConfig, "siglip_config": AutoConfig}

    dino_config: dict | PretrainedConfig | None = None
    siglip_config: dict | PretrainedConfig | None = None
    dino_mean: list[float] | tuple[float, ...] = IMAGENET_MEAN
    dino_std: list[float] | tuple[float, ...] = IMAGENET_STD
    siglip_mean: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)
    siglip_std: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self, **kwargs: Any) -> None:
        self.dino_config = as_config(self.dino_config, Dinov2WithRegistersConfig.model_type)
        self.siglip_config = as_config(self.siglip_config, SiglipVisionConfig.model_type)
        if self.dino_config.patch_size != self.siglip_config.patch_size:
            raise ValueError(
                f"the fused towers need one patch grid: DINOv2 patch {self.dino_config.patch_size} vs SigLIP patch "
                f"{self.siglip_config.patch_size}"
            )
        super().__post_init__(**kwargs)

    @property
    def patch_size(self) -> int:
        return int(self.dino_config.patch_size)

    @property
    def fused_hidden_size(self) -> int:
        return int(self.dino_config.hidden_size + self.siglip_config.hidden_size)


class DinoSiglipVisionTower(StagedTower):
    """`forward(pixels in [0, 1]) -> (B, (H/p) * (W/p), C_dino + C_siglip)`; both branches at `feature_layer`."""

    unit_name = "layers"

    def __init__(self, config: DinoSiglipVisionConfig, feature_layer: int = -2) -> None:
        super().__init__()
        self.config = config
        self.dino = Dinov2VisionTower(config.dino_config, feature_layer)
        self.siglip = SiglipVisionTower(config.siglip_config, feature_layer)
        for name, value in self.normalisation().items():  # rebuilt from the config, never saved
            self.register_buffer(name, value, persistent=False)

    def normalisation(self) -> dict[str, torch.Tensor]:
        """Each branch's mean / std as (1, 3, 1, 1) tensors, from the config (also after a meta-device load)."""
        names = ("dino_mean", "dino_std", "siglip_mean", "siglip_std")
        return {name: torch.tensor(getattr(self.config, name), dtype=torch.float32).view(1, 3, 1, 1) for name in names}

    @property
    def units(self) -> nn.ModuleList:
        return nn.ModuleList([*self.dino.units, *self.siglip.units])

    @property
    def stride(self) -> int:
        return self.config.patch_size

    @property
    def hidden_size(self) -> int:
        return self.config.fused_hidden_size

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        return self.dino.feature_grid(height, width)

    def unfreeze_stages(self, from_stage: int) -> list[int]:
        """Layers `from_stage`.. of both towers trainable, the rest frozen; the indices (of either tower)."""
        n = min(len(self.dino.units), len(self.siglip.units))
        if not 0 <= from_stage < n:
            raise ValueError(f"from_stage={from_stage} is out of range: the fused towers have layers 0..{n - 1}")
        self.freeze()
        for tower in (self.dino, self.siglip):
            for layer in tower.units[from_stage:]:
                layer.requires_grad_(True)
        return list(range(from_stage, max(len(self.dino.units), len(self.siglip.units))))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dino = self.dino((pixel_values - self.dino_mean.to(pixel_values)) / self.dino_std.to(pixel_values))
        siglip = self.siglip((pixel_values - self.siglip_mean.to(pixel_values)) / self.siglip_std.to(pixel_values))
        if dino.shape[1] != siglip.shape[1]:
            raise ValueError(f"DINOv2 gives {dino.shape[1]} patch tokens and SigLIP {siglip.shape[1]}: they must match")
        return torch.cat([dino, siglip], dim=-1)
