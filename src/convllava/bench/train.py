"""train.py

`convllava bench train`: optimizer steps of each stage's trainable set (projector-init, vl-pretrain,
instruct, from the shipped stage semantics) with and without gradient checkpointing: samples/s, tokens/s and
peak memory, on the same synthetic batch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ..training.config import TrainableParts
from ..training.stages import apply_trainable_parts
from .lm import IMAGE_TOKEN, _inputs, build_models
from .measure import PeakMemory, time_fn

STAGES = {"projector-init": TrainableParts(None, True, False, False),
          "vl-pretrain": TrainableParts(2, True, True, True),
          "instruct": TrainableParts(None, True, True, True)}  # fmt: skip


def _step(model: Any, optimizer: Any, ids: torch.Tensor, pixels: torch.Tensor, labels: torch.Tensor) -> None:
    model(input_ids=ids, pixel_values=pixels, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bench_train(preset: str = "convllava-768", text: str = "small", batch: int = 8, device: str = "cpu",
                dtype: torch.dtype = torch.float32, iters: int = 3, budget_s: float = 60.0,
                progress: Callable[[str], None] = print) -> list[dict[str, Any]]:  # fmt: skip
    model, _, size = build_models(preset, text, device, dtype)
    tokens = model.model.num_image_tokens(size, size)
    ids, pixels = _inputs(batch, tokens, size, device, dtype)
    labels = ids.masked_fill(ids == IMAGE_TOKEN, -100)
    rows = []
    for stage, parts in STAGES.items():
        for checkpointing in (False, True):
            progress(f"train {stage} checkpointing={checkpointing}")
            model.train()
            apply_trainable_parts(model, parts)
            if checkpointing:
                model.gradient_checkpointing_enable()
            else:
                model.gradient_checkpointing_disable()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=1e-5)

            with PeakMemory(device) as memory:
                timing = time_fn(
                    partial(_step, model, optimizer, ids, pixels, labels),
                    device,
                    warmup=1,
                    iters=iters,
                    budget_s=budget_s,
                )
            seconds = timing["p50_ms"] / 1000
            rows.append({"stage": stage, "gradient_checkpointing": checkpointing, "batch": batch,
                         "trainable_params": sum(p.numel() for p in params), "samples_per_s": batch / seconds,
                         "tokens_per_s": batch * ids.shape[1] / seconds, "peak_mb": round(memory.peak_mb, 1),
                         **timing})  # fmt: skip
    model.gradient_checkpointing_disable()
    return rows
