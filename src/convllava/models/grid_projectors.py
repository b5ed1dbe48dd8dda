"""grid_projectors.py

Connectors that emit fewer visual tokens than they get. On the 2-D token grid: LLaVA-NeXT's `pooler` (a 2 x 2
stride-2 convolution, a quarter of the tokens) and Bunny's `spp_v1/v2/v3` (linear layers around a 2 x 2 average
pool); MobileVLM's `ldpnet` / `ldpnetv2` are in ldp_projectors.py. In raster order: Bunny's `minigpt` and
`vanilla` (four consecutive tokens into one Linear, their channels concatenated / interleaved). nanoVLM's
`pixel_shuffle{s}x` folds each s x s block of tokens into one (channels side by side), then a Linear without bias. Parameter names follow the original modules, so
their `mm_projector.*` weights load by prefix alone. Each is registered in `projectors.PROJECTORS` with its token
count, which the processor uses to expand `<image>`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _as_map(features: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
    """(B, N, C) row-major tokens -> (B, C, h, w); without `grid`, the tokens must form a square."""
    batch, n, channels = features.shape
    if grid is None:
        side = math.isqrt(n)
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(
            f"the projector got {n} visual tokens, which is not a {grid[0]} x {grid[1]} grid: it needs the "
            "patch tokens only (vision_feature_select='patch'), one per cell of the tower's feature grid"
        )
    return features.transpose(1, 2).reshape(batch, channels, *grid)


def _as_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    return feature_map.flatten(2).transpose(1, 2)


class GridProjector(nn.Module):
    """Base of the grid-aware connectors: `forward(features (B, N, C), grid=(h, w)) -> (B, M, D)`."""

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        raise NotImplementedError


class PoolerProjector(GridProjector):
    """LLaVA-NeXT `pooler`: Conv2d(C, D, 2, stride 2) over the grid, then GELU and Linear(D, D)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv_pool = nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2)
        self.proj = nn.Sequential(nn.GELU(), nn.Linear(out_dim, out_dim))

    @staticmethod
    def num_tokens(grid_h: int, grid_w: int) -> int:
        return (grid_h // 2) * (grid_w // 2)  # the convolution drops an odd last row / column

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return self.proj(_as_tokens(self.conv_pool(_as_map(features, grid))))


class SPPProjector(GridProjector):
    """Bunny `spp_v1` / `spp_v2` / `spp_v3`: where a 2 x 2 average pool sits among linear layers.

    v1: linear_1 -> pool -> linear_2; v2: linear_1 -> linear_2 -> pool; v3: linear_0 -> pool -> linear_1 ->
    linear_2. The original builds all three linears in every variant (so its checkpoints hold them all).
    """

    def __init__(self, in_dim: int, out_dim: int, variant: str) -> None:
        super().__init__()
        if variant not in ("v1", "v2", "v3"):
            raise ValueError(f"SPP variant {variant!r} is not one of v1, v2, v3")
        self.variant = variant
        self.linear_0 = nn.Linear(in_dim, in_dim)
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.pooling = nn.AvgPool2d(kernel_size=2)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    @staticmethod
    def num_tokens(grid_h: int, grid_w: int) -> int:
        return (grid_h // 2) * (grid_w // 2)

    def _pool(self, features: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor:
        return _as_tokens(self.pooling(_as_map(features, grid)))

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        if self.variant == "v1":
            return self.linear_2(self._pool(self.linear_1(features), grid))
        if self.variant == "v2":
            return self._pool(self.linear_2(self.linear_1(features)), grid)
        return self.linear_2(self.linear_1(self._pool(self.linear_0(features), grid)))


class FourTokenProjector(GridProjector):
    """Bunny `minigpt` (four consecutive raster tokens' channels side by side) and `vanilla` (interleaved:
    channel c of the four, then channel c + 1, ...), then Linear(4 C, D). Not spatial: the four are a run of
    one row."""

    def __init__(self, in_dim: int, out_dim: int, interleave: bool) -> None:
        super().__init__()
        self.interleave = interleave
        self.linear = nn.Linear(4 * in_dim, out_dim)

    @staticmethod
    def num_tokens(grid_h: int, grid_w: int) -> int:
        if (grid_h * grid_w) % 4:
            raise ValueError(f"minigpt / vanilla merge 4 tokens into one: a {grid_h} x {grid_w} grid does not divide")
        return grid_h * grid_w // 4

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        batch, n, channels = features.shape
        self.num_tokens(1, n)  # the same check, on the tokens given
        groups = features.reshape(batch, n // 4, 4, channels)
        if self.interleave:
            groups = groups.transpose(2, 3)
        return self.linear(groups.reshape(batch, n // 4, 4 * channels))


def fixed_tokens(count: int, grid_h: int, grid_w: int) -> int:
    """Tokens of a connector that sends `count` whatever the grid (learned queries, a pool to a fixed size)."""
    return count


def pixel_shuffle_tokens(factor: int, grid_h: int, grid_w: int) -> int:
    """Tokens `pixel_shuffle{factor}x` emits for a grid_h x grid_w grid (both must divide by `factor`)."""
    if grid_h % factor or grid_w % factor:
        raise ValueError(
            f"pixel_shuffle{factor}x folds {factor} x {factor} blocks: a {grid_h} x {grid_w} token grid does not "
            f"divide; pick an image size whose grid is a multiple of {factor}"
        )
    return (grid_h // factor) * (grid_w // factor)


class PixelShuffleProjector(GridProjector):
    """nanoVLM's `ModalityProjector`: each `factor` x `factor` block of the grid becomes one token whose channels
    are the block's tokens in row-major order, then `proj` = Linear(C * factor^2, D, bias=False)."""

    def __init__(self, in_dim: int, out_dim: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(in_dim * factor**2, out_dim, bias=False)

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        feature_map = _as_map(features, grid)
        batch, channels, h, w = feature_map.shape
        pixel_shuffle_tokens(self.factor, h, w)
        s = self.factor
        blocks = feature_map.permute(0, 2, 3, 1).reshape(batch, h // s, s, w // s, s, channels)
        blocks = blocks.permute(0, 1, 3, 2, 4, 5).reshape(batch, (h // s) * (w // s), s * s * channels)
        return self.proj(blocks)
