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

from .base import StagedTower

FEATURE_SELECTS: tuple[str, ...] = ("patch", "cls_patch")


class ClipVisionTower(StagedTower):
    """`forward(pixel_values) -> (B, (H/14) * (W/14) [+1], C)` from CLIP layer `feature_layer`."""

    units_path = "encoder.layers"  # a ViT's "stages" are its layers
    unit_name = "layers"

    def __init__(self, config: CLIPVisionConfig, feature_layer: int = -2, select: str = "patch") -> None:
        super().__init__()
        if select not in FEATURE_SELECTS:
            raise ValueError(f"vision_feature_select={select!r} is not one of {FEATURE_SELECTS}")
        n_layers = config.num_hidden_layers
        if not -(n_layers + 1) <= feature_layer <= n_layers:
            raise ValueError(f"vision_feature_layer={feature_layer} is out of range for {n_layers} CLIP layers")
        if getattr(config, "_attn_implementation", None) is None:
            config._attn_implementation = "sdpa"  # standalone towers (benchmarks, tests) would fall back to eager
        self.config = config
        self.feature_layer = feature_layer
        self.select = select
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(n_layers))

    @property
    def stride(self) -> int:
        return self.config.patch_size

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.config.patch_size, width // self.config.patch_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # images larger than the pretraining size get bicubically interpolated position embeddings
        interpolate = tuple(pixel_values.shape[-2:]) != (self.config.image_size, self.config.image_size)
        hidden = self.pre_layrnorm(self.embeddings(pixel_values, interpolate_pos_encoding=interpolate))
        n_run = self.feature_layer % (len(self.encoder.layers) + 1)  # index into hidden_states
        for layer in self.encoder.layers[:n_run]:
            hidden = layer(hidden, None)
        return hidden[:, 1:] if self.select == "patch" else hidden
