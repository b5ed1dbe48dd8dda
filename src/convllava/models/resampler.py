"""resampler.py

TinyLLaVA's `resampler` connector, a Perceiver resampler (from OpenFlamingo): a Linear from the vision width to
the LM width, then a fixed set of learned latent queries that cross-attend to the image tokens and the latents
together, with a feed-forward block, `depth` times; a final LayerNorm. It sends `num_queries` tokens to the LM
whatever the image size. Attention has 8 heads of 64 whatever the width, as the original fixes them.

Parameter names are the original `PerceiverResampler`'s (`latents`, `linear`, `layers.{i}.0.*` attention,
`layers.{i}.1.*` feed-forward, `norm`): TinyLLaVA's `connector._connector.*` weights load with that prefix renamed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEADS, HEAD_DIM = 8, 64


class PerceiverAttention(nn.Module):
    """Latents attend to [image tokens; latents], each LayerNorm-ed; no biases."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = HEADS * HEAD_DIM
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media, latents = self.norm_media(media), self.norm_latents(latents)
        batch, n_latents, _ = latents.shape
        keys, values = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, N, H * d) -> (B, H, N, d)
            return x.reshape(batch, x.shape[1], HEADS, HEAD_DIM).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(latents)), heads(keys), heads(values))
        return self.to_out(out.transpose(1, 2).reshape(batch, n_latents, HEADS * HEAD_DIM))


def _feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
    )


class PerceiverResampler(nn.Module):
    """`forward(features (B, N, C), grid=None) -> (B, num_queries, D)`."""

    def __init__(self, in_dim: int, out_dim: int, num_queries: int, depth: int) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.latents = nn.Parameter(torch.randn(num_queries, out_dim))
        self.linear = nn.Linear(in_dim, out_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(out_dim), _feed_forward(out_dim)]) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, features: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        media = self.linear(features)
        latents = self.latents.to(media.dtype).expand(media.shape[0], -1, -1)
        for attention, feed_forward in self.layers:
            latents = attention(media, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm(latents)
