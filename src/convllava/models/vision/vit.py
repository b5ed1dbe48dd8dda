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
from transformers import Dinov2Config, Dinov2WithRegistersConfig, SiglipVisionConfig
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings, Dinov2Layer
from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import (
    Dinov2WithRegistersEmbeddings,
    Dinov2WithRegistersLayer,
)
from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer, SiglipVisionEmbeddings

from .base import ViTTower


class SiglipVisionTower(ViTTower):
    """`forward(pixel_values) -> (B, (H/p) * (W/p), C)`; position embeddings interpolated off the trained size."""

    units_path = "encoder.layers"

    def build(self, config: SiglipVisionConfig) -> None:
        self.embeddings = SiglipVisionEmbeddings(config)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(SiglipEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        interpolate = tuple(pixel_values.shape[-2:]) != (self.config.image_size, self.config.image_size)
        return self.embeddings(pixel_values, interpolate_pos_encoding=interpolate)

    def select_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


class Dinov2VisionTower(ViTTower):
    """`forward(pixel_values) -> (B, [1 +] (H/p) * (W/p), C)`; DINOv2 always interpolates its position embeddings."""

    units_path = "encoder.layer"
    feature_selects = ("patch", "cls_patch")

    def build(self, config: Dinov2Config) -> None:
        registers = isinstance(config, Dinov2WithRegistersConfig)
        self.n_registers = config.num_register_tokens if registers else 0
        self.embeddings = (Dinov2WithRegistersEmbeddings if registers else Dinov2Embeddings)(config)
        layer = Dinov2WithRegistersLayer if registers else Dinov2Layer
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(layer(config) for _ in range(config.num_hidden_layers))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.embeddings(pixel_values)

    def run_layer(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden)

    def select_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        patches = hidden[:, 1 + self.n_registers :]
        return patches if self.select == "patch" else torch.cat([hidden[:, :1], patches], dim=1)
