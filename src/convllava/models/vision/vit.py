"""vit.py

The SigLIP and DINOv2 ViT towers (prismatic's and LLaVA-OneVision's encoders), built from transformers' own
modules with the key names of `SiglipVisionModel` (less its `vision_model.` prefix) and `Dinov2Model`, so their
checkpoints load by name.

Features are `hidden_states[feature_layer]` as transformers numbers them (0 = the embeddings; -1 = the last layer,
before any final norm; prismatic takes -2) and layers after it are never run. SigLIP has no CLS token, so all of
its tokens are patches; DINOv2's CLS (and its register tokens, in `dinov2_with_registers`) are dropped for
`select="patch"`, and for `cls_patch` the CLS token is kept in front of the patches.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2WithRegistersConfig, PretrainedConfig, SiglipVisionConfig
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings, Dinov2Layer
from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import (
    Dinov2WithRegistersEmbeddings,
    Dinov2WithRegistersLayer,
)
from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer, SiglipVisionEmbeddings

from .base import StagedTower


class _ViTTower(StagedTower):
    """What the ViT towers share: layer selection, patch grid, sdpa by default."""

    unit_name = "layers"
    feature_selects: tuple[str, ...] = ("patch",)

    def __init__(self, config: PretrainedConfig, feature_layer: int, select: str) -> None:
        super().__init__()
        if select not in self.feature_selects:
            raise ValueError(
                f"vision_feature_select={select!r} is not one of {self.feature_selects} for {type(self).__name__}"
            )
        n_layers = config.num_hidden_layers
        if not -(n_layers + 1) <= feature_layer <= n_layers:
            raise ValueError(f"vision_feature_layer={feature_layer} is out of range for {n_layers} layers")
        if getattr(config, "_attn_implementation", None) is None:
            config._attn_implementation = "sdpa"
        self.config = config
        self.feature_layer = feature_layer
        self.select = select
        self.n_run = feature_layer % (n_layers + 1)  # index into hidden_states: the layers to run

    @property
    def stride(self) -> int:
        return self.config.patch_size

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.config.patch_size, width // self.config.patch_size


class SiglipVisionTower(_ViTTower):
    """`forward(pixel_values) -> (B, (H/p) * (W/p), C)`; position embeddings interpolated off the trained size."""

    units_path = "encoder.layers"

    def __init__(self, config: SiglipVisionConfig, feature_layer: int = -1, select: str = "patch") -> None:
        super().__init__(config, feature_layer, select)
        self.embeddings = SiglipVisionEmbeddings(config)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(SiglipEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        interpolate = tuple(pixel_values.shape[-2:]) != (self.config.image_size, self.config.image_size)
        hidden = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate)
        for layer in self.encoder.layers[: self.n_run]:
            hidden = layer(hidden, None)
        return hidden


class Dinov2VisionTower(_ViTTower):
    """`forward(pixel_values) -> (B, [1 +] (H/p) * (W/p), C)`; DINOv2 always interpolates its position embeddings."""

    units_path = "encoder.layer"
    feature_selects = ("patch", "cls_patch")

    def __init__(self, config: Dinov2Config, feature_layer: int = -1, select: str = "patch") -> None:
        super().__init__(config, feature_layer, select)
        registers = isinstance(config, Dinov2WithRegistersConfig)
        self.n_registers = config.num_register_tokens if registers else 0
        self.embeddings = (Dinov2WithRegistersEmbeddings if registers else Dinov2Embeddings)(config)
        layer = Dinov2WithRegistersLayer if registers else Dinov2Layer
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(layer(config) for _ in range(config.num_hidden_layers))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(pixel_values)
        for layer in self.encoder.layer[: self.n_run]:
            hidden = layer(hidden)
        patches = hidden[:, 1 + self.n_registers :]
        return patches if self.select == "patch" else torch.cat([hidden[:, :1], patches], dim=1)
