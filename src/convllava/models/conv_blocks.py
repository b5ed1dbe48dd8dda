"""conv_blocks.py

Convolutional building blocks the connectors share: `LayerNorm2d` (LayerNorm over the channels of a (B, C, H, W)
map, as timm's) and `SqueezeExcitation` (a gate per channel from the map's mean, with the activation and gate
each original uses: torchvision's ReLU / hardsigmoid in MobileVLM's LDP, timm's SiLU / sigmoid in Honeybee's
C-Abstractor). Parameter names follow those originals (`weight` / `bias`; `fc1`, `fc2`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, then `act` (timm's `LayerNorm2d` / `LayerNormAct2d`)."""

    def __init__(self, channels: int, eps: float = 1e-5, act: nn.Module | None = None) -> None:
        super().__init__(channels, eps=eps)
        self.act = act or nn.Identity()

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(feature_map.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return self.act(normed.permute(0, 3, 1, 2))


class SqueezeExcitation(nn.Module):
    """x * gate(fc2(act(fc1(mean of x over H, W)))), with 1 x 1 convs `fc1` / `fc2`."""

    def __init__(self, channels: int, squeeze: int, act: Callable[[torch.Tensor], torch.Tensor] = F.relu,
                 gate: Callable[[torch.Tensor], torch.Tensor] = F.hardsigmoid) -> None:  # fmt: skip
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.act, self.gate = act, gate

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map * self.gate(self.fc2(self.act(self.fc1(feature_map.mean(dim=(2, 3), keepdim=True)))))
