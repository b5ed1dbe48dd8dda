"""projectors.py

Connectors from vision features (B, N, C_v) to LM embeddings (B, M, D), registered by exact name.

Every projector declares how many tokens it emits for a feature grid (`num_tokens(h, w)`), which the
processor uses to expand `<image>`. Names follow the original LLaVA builders: `linear`, `mlp{k}x_gelu`
(k linear layers with GELU between; `nn.Sequential` indices 0, 2, ... match `mm_projector.{0,2}`),
`identity`, and LLaVA-NeXT's `mlp{k}x_res{m}x_gelu` (the MLP, then m `SimpleResBlock`s). Two are ours, for
towers trained from random weights (the demo): `norm_mlp2x_gelu`, `mlp2x_gelu` after standardising each channel
over an image's visual tokens (such features are dominated by a constant), and `norm_pos_mlp2x_gelu`, which also
adds each token's place in the image (such a tower has not learnt it). The connectors that emit fewer tokens
than they get -- pooling the token grid (`pooler`, `ldpnet`, `ldpnetv2`, Cobra's `fused_ldpnet`, `spp_v1/v2/v3`)
or merging runs of four tokens (`minigpt`, `vanilla`) -- live in grid_projectors.py and ldp_projectors.py;
TinyLLaVA's Perceiver `resampler` (a fixed number of learned queries) in resampler.py; Honeybee's `c_abstractor`
(RegNet stages around a pool, with a position embedding learned for the model's grid) in c_abstractor.py. Every
projector is called as `projector(features, grid=(h, w))`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .c_abstractor import CAbstractor
from .grid_projectors import (
    FourTokenProjector,
    PixelShuffleProjector,
    PoolerProjector,
    SPPProjector,
    fixed_tokens,
    pixel_shuffle_tokens,
)
from .ldp_projectors import FusedLDPProjector, LDPProjector, LDPv2Projector
from .resampler import PerceiverResampler


class Projector(nn.Sequential):
    """A token-preserving projector: one output token per feature position."""

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        return super().forward(features)  # its layers need the tokens only (GridPosition: a square of them)

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


class GridPosition(nn.Module):
    """Add where each visual token lies: a fixed 2-D Fourier embedding of its centre in normalised image
    coordinates (so a place in the image has one embedding at every grid size), times a learned scale.

    The language model's RoPE rotates queries and keys, not values: attending to "the red token" retrieves what
    is there, not where. A pretrained ConvNeXt has learnt absolute position from its zero padding; a tower
    trained from random weights has not, and its language model could not say where an object was (measured in
    the demo: the box of a uniquely coloured object in the wrong grid cell for half the held-out expressions,
    while it knew which colours were present, POPE F1 0.99; with this embedding Acc@0.5 went from 0.44 to 0.63).
    Needs a square grid of patch tokens, as ConvLLaVA's square images give (no CLS token).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"GridPosition needs a channel count divisible by 4, got {channels}")
        self.channels = channels
        self.scale = nn.Parameter(torch.ones(()))

    def embedding(self, side: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:  # (side * side, C)
        centres = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side
        freqs = torch.logspace(0, 6, self.channels // 4, base=2.0, device=device)  # 1 .. 64 half-waves
        angles = torch.pi * centres[:, None] * freqs[None, :]  # (side, C/4)
        axis = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (side, C/2)
        rows, cols = axis[:, None, :].expand(side, side, -1), axis[None, :, :].expand(side, side, -1)
        return torch.cat([rows, cols], dim=-1).reshape(side * side, self.channels).to(dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, N, C)
        n = features.shape[1]
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"GridPosition needs a square grid of visual tokens, got {n}: use square images and patch tokens only "
                "(vision_feature_select='patch'), or a projector without position (norm_mlp2x_gelu)"
            )
        return features + self.scale * self.embedding(side, features.device, features.dtype)


class SimpleResBlock(nn.Module):
    """LLaVA-NeXT's residual block: x = LayerNorm(x); x + Linear(GELU(Linear(x))) -- the residual adds the
    normalised input, as the original does."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(channels)
        self.proj = nn.Sequential(nn.Linear(channels, channels), nn.GELU(), nn.Linear(channels, channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.pre_norm(features)
        return features + self.proj(features)


def _mlp_gelu(
    depth: int, standardize: bool = False, position: bool = False, res_blocks: int = 0
) -> Callable[[int, int], Projector]:
    def build(in_dim: int, out_dim: int) -> Projector:
        layers: list[nn.Module] = [ImageFeatureNorm(in_dim)] if standardize else []
        layers += [GridPosition(in_dim)] if position else []
        layers.append(nn.Linear(in_dim, out_dim))
        for _ in range(1, depth):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        layers += [SimpleResBlock(out_dim) for _ in range(res_blocks)]
        return Projector(*layers)

    return build


def _fused_gelu_mlp(in_dim: int, out_dim: int) -> Projector:
    """prismatic's `fused-gelu-mlp` (for fused DINOv2 + SigLIP features): Linear(C, 4C), GELU, Linear(4C, D), GELU,
    Linear(D, D); indices 0, 2, 4 as its `projector` Sequential."""
    return Projector(
        nn.Linear(in_dim, 4 * in_dim), nn.GELU(), nn.Linear(4 * in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
    )


@dataclass(frozen=True)
class ProjectorSpec:
    name: str
    build: Callable[[int, int], nn.Module]
    num_tokens: Callable[[int, int], int] = Projector.num_tokens
    #: an original LLaVA-family builder (`build_vision_projector` of LLaVA, LLaVA-NeXT or MobileVLM) makes it under
    #: this name, with these parameter names
    in_original_llava: bool = True
    #: `build` also takes `input_grid=(h, w)`, the tower's grid at the model's image_size (a learned embedding per
    #: position)
    needs_input_grid: bool = False

    def keeps_grid(self, side: int) -> bool:
        """One output token per cell of a side x side grid (and of the next size, so a fixed count that equals
        side^2 by chance does not pass): what AnyRes needs to lay tile tokens out on the tower's grid."""
        return all(self.num_tokens(n, n) == n * n for n in (side, side + 1))


#: Exact-name registry. `mlp{k}x_gelu` for k = 1..8 are listed explicitly.
PROJECTORS: dict[str, ProjectorSpec] = {
    "linear": ProjectorSpec("linear", _linear),
    "identity": ProjectorSpec("identity", _identity),
    **{f"mlp{k}x_gelu": ProjectorSpec(f"mlp{k}x_gelu", _mlp_gelu(k)) for k in range(1, 9)},
    **{  # LLaVA-NeXT's
        f"mlp{k}x_res{m}x_gelu": ProjectorSpec(f"mlp{k}x_res{m}x_gelu", _mlp_gelu(k, res_blocks=m))
        for k in range(1, 5)
        for m in range(1, 5)
    },
    "norm_mlp2x_gelu": ProjectorSpec("norm_mlp2x_gelu", _mlp_gelu(2, standardize=True), in_original_llava=False),
    "norm_pos_mlp2x_gelu": ProjectorSpec(
        "norm_pos_mlp2x_gelu", _mlp_gelu(2, standardize=True, position=True), in_original_llava=False
    ),
    "fused_gelu_mlp": ProjectorSpec("fused_gelu_mlp", _fused_gelu_mlp, in_original_llava=False),  # prismatic's
    "pooler": ProjectorSpec("pooler", PoolerProjector, PoolerProjector.num_tokens),
    "ldpnet": ProjectorSpec("ldpnet", LDPProjector, LDPProjector.num_tokens),
    "ldpnetv2": ProjectorSpec("ldpnetv2", LDPv2Projector, LDPv2Projector.num_tokens),
    "fused_ldpnet": ProjectorSpec(  # Cobra's (prismatic's fork), for fused DINOv2 + SigLIP features
        "fused_ldpnet", FusedLDPProjector, FusedLDPProjector.num_tokens, in_original_llava=False
    ),
    **{  # Bunny's
        f"spp_{v}": ProjectorSpec(f"spp_{v}", functools.partial(SPPProjector, variant=v), SPPProjector.num_tokens)
        for v in ("v1", "v2", "v3")
    },
    "minigpt": ProjectorSpec(
        "minigpt", functools.partial(FourTokenProjector, interleave=False), FourTokenProjector.num_tokens
    ),
    "vanilla": ProjectorSpec(
        "vanilla", functools.partial(FourTokenProjector, interleave=True), FourTokenProjector.num_tokens
    ),
    **{  # nanoVLM's
        f"pixel_shuffle{s}x": ProjectorSpec(
            f"pixel_shuffle{s}x",
            functools.partial(PixelShuffleProjector, factor=s),
            functools.partial(pixel_shuffle_tokens, s),
            in_original_llava=False,
        )
        for s in (2, 3, 4)
    },
    # TinyLLaVA's Perceiver resampler: `resampler` is its default (128 queries, 3 layers)
    "resampler": ProjectorSpec(
        "resampler",
        functools.partial(PerceiverResampler, num_queries=128, depth=3),
        functools.partial(fixed_tokens, 128),
        in_original_llava=False,
    ),
    **{
        f"resampler_q{q}_l{depth}": ProjectorSpec(
            f"resampler_q{q}_l{depth}",
            functools.partial(PerceiverResampler, num_queries=q, depth=depth),
            functools.partial(fixed_tokens, q),
            in_original_llava=False,
        )
        for q in (16, 32, 64, 128, 144, 256)
        for depth in (1, 2, 3, 4, 6)
    },
    # Honeybee's C-Abstractor: `c_abstractor` is its default (144 queries)
    **{
        name: ProjectorSpec(
            name,
            functools.partial(CAbstractor, num_queries=q),
            functools.partial(fixed_tokens, q),
            in_original_llava=False,
            needs_input_grid=True,
        )
        for name, q in (
            ("c_abstractor", 144),
            ("c_abstractor_q64", 64),
            ("c_abstractor_q144", 144),
            ("c_abstractor_q256", 256),
        )
    },
}

_MLP_PATTERN = re.compile(r"mlp(\d+)x_gelu")
_MLP_RES_PATTERN = re.compile(r"mlp(\d+)x_res(\d+)x_gelu")
_RESAMPLER_PATTERN = re.compile(r"resampler_q(\d+)_l(\d+)")


def get_projector_spec(name: str) -> ProjectorSpec:
    try:
        return PROJECTORS[name]
    except KeyError:
        hint = ""
        if _MLP_PATTERN.fullmatch(name):
            hint = " (mlp{k}x_gelu is registered for k = 1..8)"
        elif _MLP_RES_PATTERN.fullmatch(name):
            hint = " (mlp{k}x_res{m}x_gelu is registered for k, m = 1..4)"
        elif _RESAMPLER_PATTERN.fullmatch(name):
            hint = " (resampler_q{q}_l{l} is registered for q in 16, 32, 64, 128, 144, 256 and l in 1, 2, 3, 4, 6)"
        raise ValueError(f"unknown projector_type {name!r}{hint}; known: {sorted(PROJECTORS)}") from None


def build_projector(name: str, in_dim: int, out_dim: int, input_grid: tuple[int, int] | None = None) -> nn.Module:
    """The projector `name` from `in_dim` vision channels to `out_dim`; `input_grid` is the tower's feature grid at
    the model's image size, which the connectors with a learned per-position embedding (C-Abstractor) need."""
    spec = get_projector_spec(name)
    if not spec.needs_input_grid:
        return spec.build(in_dim, out_dim)
    if input_grid is None:
        raise ValueError(f"projector {name!r} learns an embedding per input position: pass input_grid=(h, w)")
    return spec.build(in_dim, out_dim, input_grid=input_grid)
