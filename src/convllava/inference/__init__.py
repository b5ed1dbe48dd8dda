"""inference/

Using a trained model: the `ConvLlavaPipeline` (chat, batched generate, streaming) that `convllava.load`
returns, and the batch-generation job behind `convllava generate`.
"""

from __future__ import annotations

from .pipeline import DEFAULT_GENERATION, ConvLlavaPipeline, Request

__all__ = ["DEFAULT_GENERATION", "ConvLlavaPipeline", "Request"]
