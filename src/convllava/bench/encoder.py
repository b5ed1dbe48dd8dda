"""encoder.py

`convllava bench encoder`: vision tower + projector per resolution. Rows for our ConvNeXt tower (the preset's
5-stage ConvNeXt) against the original forward (transformers' `ConvNextModel`, same weights), and for a CLIP
ViT-L/14 tower (LLaVA-1.5; interpolated position embeddings above 336 px) ours against transformers'
`CLIPVisionModel` + `LlavaMultiModalProjector`. FLOPs are counted on the meta device (exact, and SDPA
attention is counted there, unlike on CPU tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import CLIPVisionConfig, ConvNextModel, LlamaConfig, LlavaConfig

from ..models import get_preset
from ..models.projectors import build_projector
from ..models.vision.clip import ClipVisionTower
from ..models.vision.convnext import ConvNextVisionTower
from .measure import PeakMemory, count_flops, time_fn

CLIP_L14 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "patch_size": 14, "image_size": 336, "projection_dim": 768}  # fmt: skip
CONVNEXT_SIZES = (768, 1024, 1536)
CLIP_SIZES = (336, 672, 1008, 1536)


class Encoder(torch.nn.Module):
    """A tower and a projector with the forward each implementation uses."""

    def __init__(self, tower: torch.nn.Module, projector: torch.nn.Module, features: Callable) -> None:
        super().__init__()
        self.tower, self.projector, self.features = tower, projector, features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(self.tower, x))


def _convnext_builders(preset: str, text_dim: int, channels_last: bool) -> dict[str, Callable[[], Encoder]]:
    def ours() -> Encoder:
        config = get_preset(preset).vision_config
        tower = ConvNextVisionTower(config).use_channels_last(channels_last)
        return Encoder(tower, build_projector("mlp2x_gelu", tower.hidden_size, text_dim), lambda t, x: t(x))

    def reference() -> Encoder:
        config = get_preset(preset).vision_config
        projector = build_projector("mlp2x_gelu", config.hidden_sizes[-1], text_dim)
        return Encoder(ConvNextModel(config), projector,
                       lambda t, x: t(x, output_hidden_states=True).hidden_states[-1].flatten(2).transpose(1, 2))  # fmt: skip

    return {"ours": ours, "original": reference}


def _clip_builders(text_dim: int) -> dict[str, Callable[[], Encoder]]:
    def ours() -> Encoder:
        tower = ClipVisionTower(CLIPVisionConfig(**CLIP_L14), feature_layer=-2)
        return Encoder(tower, build_projector("mlp2x_gelu", 1024, text_dim), lambda t, x: t(x))

    def hf_llava() -> Encoder:
        from transformers import CLIPVisionModel
        from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

        llava = LlavaConfig(vision_config=CLIPVisionConfig(**CLIP_L14), text_config=LlamaConfig(hidden_size=text_dim))

        def features(tower: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
            out = tower(x, output_hidden_states=True, interpolate_pos_encoding=x.shape[-1] != 336)
            return out.hidden_states[-2][:, 1:]

        return Encoder(CLIPVisionModel(CLIPVisionConfig(**CLIP_L14)), LlavaMultiModalProjector(llava), features)

    return {"ours": ours, "hf-llava": hf_llava}


def _measure(build: Callable[[], Encoder], size: int, batch: int, device: str, dtype: torch.dtype,
             iters: int, budget_s: float) -> dict[str, Any]:  # fmt: skip
    with torch.device("meta"):
        fn = build()
        flops = count_flops(lambda: fn(torch.empty(batch, 3, size, size)))
    torch.manual_seed(0)
    with torch.device(device):
        fn = build().to(dtype=dtype).eval()
    x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        tokens = fn(x).shape[1]
        with PeakMemory(device) as memory:
            timing = time_fn(lambda: fn(x), device, warmup=1, iters=iters, budget_s=budget_s)
    seconds = timing["p50_ms"] / 1000
    return {"tokens": tokens, "gflops": flops / 1e9, "achieved_gflops_per_s": flops / 1e9 / seconds,
            "images_per_s": batch / seconds, "peak_mb": round(memory.peak_mb, 1), **timing}  # fmt: skip


def bench_encoder(preset: str = "convllava-768", sizes: tuple[int, ...] = CONVNEXT_SIZES,
                  clip_sizes: tuple[int, ...] = CLIP_SIZES, batch: int = 1, device: str = "cpu",
                  dtype: torch.dtype = torch.float32, iters: int = 3, budget_s: float = 60.0,
                  text_dim: int = 4096, channels_last: bool = False,
                  progress: Callable[[str], None] = print) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (family, resolution) with each implementation's numbers and ours / peer time ratios."""
    rows = []
    families = [("convnext-5stage", s, _convnext_builders(preset, text_dim, channels_last), "original") for s in sizes]
    families += [("clip-vit-l14", s, _clip_builders(text_dim), "hf-llava") for s in clip_sizes]
    for family, size, builders, peer in families:
        row: dict[str, Any] = {"family": family, "image_size": size, "batch": batch}
        for name, build in builders.items():
            progress(f"encoder {family} {size}px: {name}")
            row[name] = _measure(build, size, batch, device, dtype, iters, budget_s)
        row["tokens"] = row["ours"]["tokens"]
        row[f"ours_vs_{peer}"] = row["ours"]["p50_ms"] / row[peer]["p50_ms"]
        rows.append(row)
    return rows
