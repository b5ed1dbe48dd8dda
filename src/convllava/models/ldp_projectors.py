"""ldp_projectors.py

MobileVLM's lightweight downsample projectors, with the original parameter names (their `mm_projector.*` weights
load by prefix alone):

- `ldpnet` (LDP, MobileVLM): an MLP, then two MobileNetV3 inverted-residual blocks -- a depthwise 3 x 3 conv with
  LayerNorm and hardswish, squeeze-and-excitation, a pointwise conv with LayerNorm -- the second with stride 2:
  a quarter of the tokens (576 -> 144). The original builds them from torchvision's `InvertedResidual` and timm's
  `LayerNormAct2d`; here from torch alone, under the same names.
- `ldpnetv2` (LDPv2, MobileVLM V2): an MLP, an adaptive average pool to 12 x 12 and a depthwise-convolution
  position term (PEG); 144 tokens from any grid.
- `fused_ldpnet` (Cobra's, for fused DINOv2 + SigLIP features): LDPv2 with a 4x-wide first Linear and a 14 x 14
  pool; 196 tokens from any grid. Its keys are its `projector` Sequential's indices (0, 2, 4.peg.0), as prismatic
  / Cobra name them.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv_blocks import LayerNorm2d, SqueezeExcitation
from .grid_projectors import GridProjector, _as_map, _as_tokens


class _FeatureIR(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class _PositionInjection(nn.Module):
    """PEG (from Twins): x + depthwise 3 x 3 conv(x); tells each token its neighbourhood, so its place."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.peg = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim))

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map + self.peg(feature_map)


class _PooledToFixedGrid:
    """Connectors that average-pool the token grid to `output_grid`: that many tokens whatever the input grid."""

    output_grid: tuple[int, int]

    @classmethod
    def num_tokens(cls, grid_h: int, grid_w: int) -> int:
        return cls.output_grid[0] * cls.output_grid[1]


class LDPv2Projector(_PooledToFixedGrid, GridProjector):
    """MobileVLM V2 `ldpnetv2`: MLP -> AdaptiveAvgPool2d(12, 12) -> PEG; always 144 tokens."""

    output_grid = (12, 12)

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = _FeatureIR(in_dim, out_dim)
        self.dwn = nn.AdaptiveAvgPool2d(self.output_grid)  # no parameters: the original's name is kept for clarity
        self.peg = _PositionInjection(out_dim)

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return _as_tokens(self.peg(self.dwn(_as_map(self.mlp(features), grid))))


class FusedLDPProjector(_PooledToFixedGrid, nn.Sequential):
    """Cobra `fused-ldpnet`: Linear(C, 4C), GELU, Linear(4C, D), AdaptiveAvgPool2d(14, 14), PEG; always 196 tokens.
    A Sequential as the original's `projector`, so its weights (`0.*`, `2.*`, `4.peg.0.*`) load by prefix alone."""

    output_grid = (14, 14)

    def __init__(self, in_dim: int, out_dim: int) -> None:
        wide = 4 * in_dim
        super().__init__(nn.Linear(in_dim, wide), nn.GELU(), nn.Linear(wide, out_dim),
                         nn.AdaptiveAvgPool2d(self.output_grid), _PositionInjection(out_dim))  # fmt: skip

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        hidden = self[2](self[1](self[0](features)))
        return _as_tokens(self[4](self[3](_as_map(hidden, grid))))


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding for the squeeze width (to a multiple of 8, never 10% below)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class _InvertedResidual(nn.Module):
    """torchvision's MobileNetV3 `InvertedResidual` at expansion 1 (so no expand conv), kernel 3, SE, hardswish;
    the residual only at stride 1."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        depthwise = nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)
        self.block = nn.Sequential(
            nn.Sequential(depthwise, LayerNorm2d(channels), nn.Hardswish()),
            SqueezeExcitation(channels, _make_divisible(channels // 4)),
            nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), LayerNorm2d(channels)),
        )
        self.residual = stride == 1

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        out = self.block(feature_map)
        return feature_map + out if self.residual else out


class _LDPBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Identity(), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.mb_block = nn.Sequential(nn.Identity(), _InvertedResidual(out_dim, 1), _InvertedResidual(out_dim, 2))


class LDPProjector(GridProjector):
    """MobileVLM `ldpnet`: MLP -> inverted residual (stride 1) -> inverted residual (stride 2); ceil(h/2) x ceil(w/2)
    tokens. Its keys are `model.mlp.*` and `model.mb_block.*`, as the original's `LDPNetProjector`."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.model = _LDPBlock(in_dim, out_dim)

    @staticmethod
    def num_tokens(grid_h: int, grid_w: int) -> int:
        return ((grid_h + 1) // 2) * ((grid_w + 1) // 2)  # a 3 x 3 stride-2 conv with padding 1

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return _as_tokens(self.model.mb_block(_as_map(self.model.mlp(features), grid)))
