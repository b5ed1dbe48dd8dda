"""projectors.py

Connectors from vision features (B, N, C_v) to LM embeddings (B, M, D), registered by exact name.

Every projector declares how many tokens it emits for a feature grid (`num_tokens(h, w)`), which the
processor uses to expand `<image>`. Names follow the original LLaVA builder: `linear`, `mlp{k}x_gelu`
(k linear layers with GELU between; `nn.Sequential` indices 0, 2, ... match `mm_projector.{0,2}`) and
`identity`; and `norm_mlp2x_gelu`, ours: `mlp2x_gelu` after standardising each channel over an image's visual
tokens, for towers trained from random weights (the demo), whose features are dominated by a constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class Projector(nn.Sequential):
    """A token-preserving projector: one output token per feature position."""

    @staticmethod
    def num_tokens(grid_h: int, grid_w: int) -> int:
        return grid_h * grid_w


def _linear(in_dim: int, out_dim: int) -> Projector:
    return Projector(nn.Linear(in_dim, out_dim))


def _identity(in_dim: int, out_dim: int) -> Projector:
    if in_dim != out_dim:
        raise ValueError(f"projector 'identity' needs equal widths, got vision {in_dim} vs text {out_dim}")
    return Projector(nn.Identity())


class ImageFeatureNorm(nn.Module):
    """Centre each channel over the visual tokens of one image, scale the image to unit RMS, then a learned
    per-channel scale and shift.

    A randomly initialised ConvNeXt maps the (mostly background) image to features whose image-dependent part is
    small beside a constant shared by every position; the language model then learns to treat the visual tokens
    as a constant and never reads them (measured in the demo: the loss with real and with shuffled images equal
    to 1e-4 after 300 steps). Removing each image's per-channel mean leaves what differs between positions --
    the objects. The scale is one number per image, not one per channel: dividing each channel by its own spread
    would blow a channel that is flat in this image (no red anywhere) up to the size of one that is not, and the
    model could no longer tell whether something is present (measured: POPE at chance, colour questions below it).
    Per image, so there are no batch statistics: training and inference compute the same thing.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, N, C)
        centred = features - features.mean(dim=1, keepdim=True)
        scale = torch.rsqrt(centred.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)
        return centred * scale * self.weight + self.bias


def _mlp_gelu(depth: int, standardize: bool = False) -> Callable[[int, int], Projector]:
    def build(in_dim: int, out_dim: int) -> Projector:
        layers: list[nn.Module] = [ImageFeatureNorm(in_dim)] if standardize else []
        layers.append(nn.Linear(in_dim, out_dim))
        for _ in range(1, depth):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        return Projector(*layers)

    return build


@dataclass(frozen=True)
class ProjectorSpec:
    name: str
    build: Callable[[int, int], Projector]
    num_tokens: Callable[[int, int], int] = Projector.num_tokens
    in_original_llava: bool = True  # the original LLaVA builder (`build_vision_projector`) makes it too


#: Exact-name registry. `mlp{k}x_gelu` for k = 1..8 are listed explicitly.
PROJECTORS: dict[str, ProjectorSpec] = {
    "linear": ProjectorSpec("linear", _linear),
    "identity": ProjectorSpec("identity", _identity),
    **{f"mlp{k}x_gelu": ProjectorSpec(f"mlp{k}x_gelu", _mlp_gelu(k)) for k in range(1, 9)},
    "norm_mlp2x_gelu": ProjectorSpec("norm_mlp2x_gelu", _mlp_gelu(2, standardize=True), in_original_llava=False),
}

_MLP_PATTERN = re.compile(r"mlp(\d+)x_gelu")


def get_projector_spec(name: str) -> ProjectorSpec:
    try:
        return PROJECTORS[name]
    except KeyError:
        hint = ""
        if _MLP_PATTERN.fullmatch(name):
            hint = " (mlp{k}x_gelu is registered for k = 1..8)"
        raise ValueError(f"unknown projector_type {name!r}{hint}; known: {sorted(PROJECTORS)}") from None


def build_projector(name: str, in_dim: int, out_dim: int) -> Projector:
    return get_projector_spec(name).build(in_dim, out_dim)
