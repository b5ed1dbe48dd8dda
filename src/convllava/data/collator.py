"""collator.py

`ConversationCollator`: a list of examples -> one right-padded training batch. Images of all samples
are concatenated in order (their tokens are already in `input_ids`); native-size images are padded to a
common size and described by `image_sizes`; precomputed `vision_features` (a frozen tower's cache) are
concatenated the same way. Skip records travel in the batch under `skipped` for the
trainer to count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..constants import IGNORE_INDEX


class ConversationCollator:
    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        width = max(e["input_ids"].numel() for e in examples)
        batch_size = len(examples)
        input_ids = torch.full((batch_size, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch_size, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, width), dtype=torch.long)
        for row, example in enumerate(examples):
            length = example["input_ids"].numel()
            input_ids[row, :length] = example["input_ids"]
            labels[row, :length] = example["labels"]
            attention_mask[row, :length] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        pixels = [e["pixel_values"] for e in examples if "pixel_values" in e]
        if pixels:
            if any("image_sizes" in e for e in examples):
                batch["image_sizes"] = torch.cat([e["image_sizes"] for e in examples if "image_sizes" in e])
                batch["pixel_values"] = _pad_images(pixels)
            else:
                batch["pixel_values"] = torch.cat(pixels)
        cached = [e["vision_features"] for e in examples if "vision_features" in e]
        if cached:
            batch["vision_features"] = torch.cat(cached)
        batch["skipped"] = [item for e in examples for item in e.get("skipped", [])]
        return batch


def _pad_images(chunks: list[torch.Tensor]) -> torch.Tensor:
    height = max(c.shape[-2] for c in chunks)
    width = max(c.shape[-1] for c in chunks)
    out = torch.zeros((sum(c.shape[0] for c in chunks), 3, height, width), dtype=chunks[0].dtype)
    start = 0
    for chunk in chunks:
        out[start : start + chunk.shape[0], :, : chunk.shape[-2], : chunk.shape[-1]] = chunk
        start += chunk.shape[0]
    return out
