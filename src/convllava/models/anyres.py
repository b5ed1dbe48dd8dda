"""anyres.py

LLaVA-1.6's AnyRes arithmetic, shared by the image processor (which tiles the image and counts its tokens) and
the model (which lays the tiles' features out again): the choice of grid resolution, the size the unpadded
feature map keeps, the number of visual tokens, and the `spatial_unpad` merge itself. Sizes here are
(height, width); the original code writes (width, height).

An image of H x W becomes: one base tile (the whole image squashed to S x S), then a grid of S x S tiles cut
from the image resized into the best of `pinpoints` and padded with black. The base tile's g x g features come
first; the grid's features are laid out as one (rows * g) x (cols * g) map, the padding's rows or columns are
cut off, and a learned `image_newline` vector ends every row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def select_best_resolution(height: int, width: int, pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The (height, width) among `pinpoints` that keeps the most of the image's pixels, then wastes the fewest."""
    best, best_effective, best_wasted = None, -1, float("inf")
    for target_h, target_w in pinpoints:
        scale = min(target_w / width, target_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = target_w * target_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (int(target_h), int(target_w)), effective, wasted
    if best is None:
        raise ValueError("image_grid_pinpoints is empty: AnyRes needs at least one (height, width)")
    return best


def tile_grid(height: int, width: int, pinpoints: Sequence[Sequence[int]], tile: int) -> tuple[int, int]:
    """(rows, cols) of S x S tiles the image is cut into."""
    target_h, target_w = select_best_resolution(height, width, pinpoints)
    return target_h // tile, target_w // tile


def unpadded_size(map_h: int, map_w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of a map_h x map_w feature map the image covers (the original
    `unpad_image`, with its int() truncation)."""
    if width / height > map_w / map_h:
        new_h = int(height * (map_w / width))
        pad = (map_h - new_h) // 2
        return pad, map_h - pad, 0, map_w
    new_w = int(width * (map_h / height))
    pad = (map_w - new_w) // 2
    return 0, map_h, pad, map_w - pad


def anyres_token_count(height: int, width: int, pinpoints: Sequence[Sequence[int]], tile: int, side: int) -> int:
    """Visual tokens of an H x W image: side^2 (base) + rows kept x (columns kept + 1 newline)."""
    rows, cols = tile_grid(height, width, pinpoints, tile)
    top, bottom, left, right = unpadded_size(rows * side, cols * side, height, width)
    return side * side + (bottom - top) * (right - left + 1)


def merge_anyres(
    features: torch.Tensor, height: int, width: int, grid: tuple[int, int], newline: torch.Tensor
) -> torch.Tensor:
    """(1 + rows * cols, side^2, D) tile features of one H x W image cut into `grid` = (rows, cols) tiles
    (`tile_grid`) -> (tokens, D), as LLaVA-1.6's `spatial_unpad`."""
    rows, cols = grid
    n_tiles, n_tokens, dim = features.shape
    side = int(n_tokens**0.5)
    if n_tiles != 1 + rows * cols or side * side != n_tokens:
        raise ValueError(
            f"an {height} x {width} image needs 1 + {rows} x {cols} tiles of a square token grid; got {n_tiles} tiles "
            f"of {n_tokens} tokens (AnyRes needs a token-preserving projector such as mlp2x_gelu)"
        )
    grid = features[1:].view(rows, cols, side, side, dim).permute(4, 0, 2, 1, 3).reshape(dim, rows * side, cols * side)
    top, bottom, left, right = unpadded_size(rows * side, cols * side, height, width)
    grid = grid[:, top:bottom, left:right]
    grid = torch.cat([grid, newline.to(grid)[:, None, None].expand(dim, grid.shape[1], 1)], dim=-1)
    return torch.cat([features[0], grid.flatten(1).transpose(0, 1)], dim=0)
