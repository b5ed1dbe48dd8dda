"""lm.py

`convllava bench prefill|generate`: a whole model answering a batch of image questions. Rows compare our
model with transformers' `LlavaForConditionalGeneration` at the same language model and the same number of
visual tokens (its CLIP tower sized to give them), and with the reference of the original forward (prefill
only). Time to first token = one forward over the prompt; decode tokens/s from greedy generation with the KV
cache. On CUDA the presets run whole; on CPU `--text small` swaps in a small Llama and a small tower so that
batches of 32 finish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import CLIPVisionConfig, ConvNextConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from ..models import ConvLlavaConfig, ConvLlavaForConditionalGeneration, get_preset
from .measure import PeakMemory, time_fn
from .reference import ReferenceConvLlava

TEXT_SMALL = {"vocab_size": 32064, "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4,
              "num_attention_heads": 8, "num_key_value_heads": 8, "max_position_embeddings": 4096}  # fmt: skip
IMAGE_TOKEN = 32000
TEXT_TOKENS = 64


def build_models(preset: str, text: str, device: str, dtype: torch.dtype) -> tuple[Any, Any, int]:
    """(ours, hf_llava, image_size) with one shared language model shape and equal visual token counts."""
    config = get_preset(preset)
    if text == "small":
        vision = ConvNextConfig(depths=[1, 1, 3, 1, 2], hidden_sizes=[24, 48, 96, 192, 384], num_stages=5,
                                image_size=config.image_size)  # fmt: skip
        text_config = LlamaConfig(**TEXT_SMALL)
        config = ConvLlavaConfig(vision_config=vision, text_config=text_config, image_token_id=IMAGE_TOKEN,
                                 image_size=config.image_size)  # fmt: skip
    else:
        config.text_config.vocab_size = 32064
        config.image_token_id = IMAGE_TOKEN
    torch.manual_seed(0)
    with torch.device(device):
        ours = ConvLlavaForConditionalGeneration(config).to(dtype).eval()
    grid = config.image_size // 64
    patch = 14 if text != "small" else 16
    clip = CLIPVisionConfig(hidden_size=256 if text == "small" else 1024, intermediate_size=1024 if text == "small" else 4096,
                            num_hidden_layers=4 if text == "small" else 24, num_attention_heads=4 if text == "small" else 16,
                            patch_size=patch, image_size=grid * patch)  # fmt: skip
    llava = LlavaConfig(vision_config=clip, text_config=config.text_config, image_token_id=IMAGE_TOKEN,
                        vision_feature_layer=-2, vision_feature_select_strategy="default")  # fmt: skip
    with torch.device(device):
        peer = LlavaForConditionalGeneration(llava).to(dtype).eval()
    return ours, peer, config.image_size


def _inputs(batch: int, tokens: int, size: int, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    text = torch.randint(3, 31000, (batch, TEXT_TOKENS), generator=generator)
    ids = torch.cat([text[:, :8], torch.full((batch, tokens), IMAGE_TOKEN), text[:, 8:]], dim=1).to(device)
    return ids, torch.randn(batch, 3, size, size, generator=generator).to(device, dtype)


def _runs(kind: str, ours: Any, peer: Any, reference: Any, ids: torch.Tensor, pixels: torch.Tensor,
          peer_pixels: torch.Tensor, new_tokens: int) -> dict[str, Callable[[], Any]]:  # fmt: skip
    mask = torch.ones_like(ids)
    if kind == "prefill":
        return {"ours": lambda: ours(input_ids=ids, pixel_values=pixels, attention_mask=mask, logits_to_keep=1),
                "hf-llava": lambda: peer(input_ids=ids, pixel_values=peer_pixels, attention_mask=mask, logits_to_keep=1),
                "original": lambda: reference(ids, pixels)}  # fmt: skip
    gen = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    first = {**gen, "max_new_tokens": 1, "min_new_tokens": 1}
    return {"ours": lambda: ours.generate(input_ids=ids, pixel_values=pixels, attention_mask=mask, **gen),
            "ours:first": lambda: ours.generate(input_ids=ids, pixel_values=pixels, attention_mask=mask, **first),
            "hf-llava": lambda: peer.generate(input_ids=ids, pixel_values=peer_pixels, attention_mask=mask, **gen),
            "hf-llava:first": lambda: peer.generate(input_ids=ids, pixel_values=peer_pixels, attention_mask=mask,
                                                    **first)}  # fmt: skip


def bench_lm(kind: str, preset: str = "convllava-768", text: str = "small", batches: tuple[int, ...] = (1, 8, 32),
             new_tokens: int = 32, device: str = "cpu", dtype: torch.dtype = torch.float32, iters: int = 3,
             budget_s: float = 60.0, progress: Callable[[str], None] = print) -> list[dict[str, Any]]:  # fmt: skip
    """`kind` = "prefill" (time to first token) or "generate" (decode tokens/s)."""
    ours, peer, size = build_models(preset, text, device, dtype)
    reference = ReferenceConvLlava(ours) if kind == "prefill" else None
    tokens = ours.model.num_image_tokens(size, size)
    peer_size = peer.config.vision_config.image_size
    rows = []
    for batch in batches:
        ids, pixels = _inputs(batch, tokens, size, device, dtype)
        peer_pixels = torch.randn(batch, 3, peer_size, peer_size, device=device, dtype=dtype)
        runs = _runs(kind, ours, peer, reference, ids, pixels, peer_pixels, new_tokens)
        row: dict[str, Any] = {"kind": kind, "preset": preset, "text": text, "batch": batch, "visual_tokens": tokens,
                               "prompt_tokens": ids.shape[1]}  # fmt: skip
        for name, fn in runs.items():
            progress(f"{kind} batch {batch}: {name}")
            with torch.inference_mode(), PeakMemory(device) as memory:
                timing = time_fn(fn, device, warmup=1, iters=iters, budget_s=budget_s)
            row[name] = {**timing, "peak_mb": round(memory.peak_mb, 1)}
        if kind == "generate":  # decode rate: the tokens after the first, over the time after the first
            for name in ("ours", "hf-llava"):
                first = row.pop(f"{name}:first")
                decode_s = max(row[name]["p50_ms"] - first["p50_ms"], 1e-6) / 1000
                row[name].update(first_token_ms=first["p50_ms"], tokens_per_s=batch * (new_tokens - 1) / decode_s)
            row["ours_vs_hf-llava"] = row["hf-llava"]["tokens_per_s"] / row["ours"]["tokens_per_s"]  # decode time
        else:
            for peer_name in ("hf-llava", "original"):
                row[f"ours_vs_{peer_name}"] = row["ours"]["p50_ms"] / row[peer_name]["p50_ms"]
        rows.append(row)
    return rows
