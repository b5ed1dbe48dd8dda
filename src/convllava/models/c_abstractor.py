"""c_abstractor.py

Honeybee's C-Abstractor (`c_abstractor`, `c_abstractor_q{q}`): a learned position embedding on the input grid,
a RegNet stage (timm's `RegStage`: bottleneck blocks with a depthwise 3 x 3 conv, squeeze-and-excitation, SiLU and
LayerNorm), an adaptive average pool to sqrt(q) x sqrt(q), a second RegNet stage and a SiLU MLP readout. Its
locality-preserving pooling sends a fixed q tokens (144 by default) whatever the tower's grid.

Honeybee builds the stages from timm; here they are built from torch alone under timm's parameter names
(`net.0.b1.conv1.conv.weight`, ...), so an `abstractor.*` checkpoint fits with the prefix renamed only. The
original's defaults: 3 blocks a stage, hidden width 1024, a 2-layer readout. timm gives each block's
LayerNorm eps 1e-5 (its `LayerNormAct2d`, into which `ConvNormAct` turns `LayerNorm2d`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .conv_blocks import LayerNorm2d, SqueezeExcitation
from .grid_projectors import GridProjector, _as_map, _as_tokens


class _ConvNormAct(nn.Module):
    """timm's `ConvNormAct`: a bias-free conv (`conv`) and its norm (`bn`, a LayerNorm here)."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = LayerNorm2d(out_chs, eps=1e-5, act=nn.SiLU() if act else None)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(feature_map))


class _RegBottleneck(nn.Module):
    """timm's RegNet `Bottleneck` at stride 1, bottleneck ratio 1, group size 1 (a depthwise 3 x 3) and SE ratio
    0.25 of the block's input width; a 1 x 1 conv shortcut when the width changes."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = _ConvNormAct(in_chs, out_chs, 1)
        self.conv2 = _ConvNormAct(out_chs, out_chs, 3, groups=out_chs)
        self.se = SqueezeExcitation(out_chs, round(in_chs * 0.25), act=F.silu, gate=torch.sigmoid)
        self.conv3 = _ConvNormAct(out_chs, out_chs, 1, act=False)
        self.downsample = _ConvNormAct(in_chs, out_chs, 1, act=False) if in_chs != out_chs else nn.Identity()

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(feature_map))))
        return F.silu(out + self.downsample(feature_map))


class RegStage(nn.Sequential):
    """`depth` bottleneck blocks named b1..b{depth}, the first changing the width (timm's `RegStage`)."""

    def __init__(self, depth: int, in_chs: int, out_chs: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", _RegBottleneck(in_chs if i == 0 else out_chs, out_chs))


class CAbstractor(GridProjector):
    """Honeybee C-Abstractor: x + pos_emb -> RegStage -> AdaptiveAvgPool2d(s, s) -> RegStage -> MLP; q = s * s
    tokens. The position embedding is learned for the grid the model's `image_size` gives (`input_grid`)."""

    def __init__(self, in_dim: int, out_dim: int, input_grid: tuple[int, int], num_queries: int = 144,
                 depth: int = 3, hidden: int = 1024, mlp_depth: int = 2) -> None:  # fmt: skip
        super().__init__()
        side = math.isqrt(num_queries)
        if side * side != num_queries:
            raise ValueError(f"c_abstractor needs a square number of queries, got {num_queries}")
        self.input_grid = tuple(input_grid)
        self.pos_emb = nn.Parameter(torch.zeros(1, input_grid[0] * input_grid[1], in_dim))
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        self.net = nn.Sequential(RegStage(depth, in_dim, hidden), nn.AdaptiveAvgPool2d((side, side)),
                                 RegStage(depth, hidden, hidden))  # fmt: skip
        readout: list[nn.Module] = [nn.Linear(hidden, out_dim)]
        for _ in range(1, mlp_depth):
            readout += [nn.SiLU(), nn.Linear(out_dim, out_dim)]
        self.readout = nn.Sequential(*readout)

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        # the grid, not only the count: a 2 x 8 map has the 4 x 4 grid's 16 tokens, each at another place
        grid = tuple(grid) if grid is not None else self.input_grid
        if features.shape[1] != self.pos_emb.shape[1] or grid != self.input_grid:
            got = f"a {grid[0]} x {grid[1]} grid" if grid[0] * grid[1] == features.shape[1] else "a grid"
            raise ValueError(
                f"c_abstractor's position embedding is learned for a {self.input_grid[0]} x {self.input_grid[1]} "
                f"grid, got {got} of {features.shape[1]} visual tokens: feed images of the model's image_size (pad "
                "or resize mode), not native-size ones"
            )
        return self.readout(_as_tokens(self.net(_as_map(features + self.pos_emb, grid))))
