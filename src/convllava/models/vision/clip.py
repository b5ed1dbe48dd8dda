"""clip.py

The CLIP ViT vision tower of LLaVA-1.5 (ViT-L/14 at 336 px: 576 patch tokens), built from transformers'
CLIP modules with the original key names (`embeddings.*`, `pre_layrnorm.*`, `encoder.layers.*`).

Features are the hidden states of layer `feature_layer` (LLaVA: -2, the second to last), without the
CLS token for `select="patch"` (LLaVA's default) -- layers after the selected one are never run.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer, CLIPVisionEmbeddings

from .base import ViTTower

FEATURE_SELECTS: tuple[str, ...] = ("patch", "cls_patch")


class ClipVisionTower(ViTTower):
    """`forward(pixel_values) -> (B, (H/14) * (W/14) [+1], C)` from CLIP layer `feature_layer`."""

    units_path = "encoder.layers"  # a ViT's "stages" are its layers
    feature_selects = FEATURE_SELECTS
    default_feature_layer = -2

    def build(self, config: CLIPVisionConfig) -> None:
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # images larger than the pretraining size get bicubically interpolated position embeddings
        interpolate = tuple(pixel_values.shape[-2:]) != (self.config.image_size, self.config.image_size)
        return self.pre_layrnorm(self.embeddings(pixel_values, interpolate_pos_encoding=interpolate))

    def select_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, 1:] if self.select == "patch" else hidden
