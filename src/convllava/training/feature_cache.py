"""feature_cache.py

`cache_vision_features`: run a stage's frozen vision tower once over every image its records use and keep the
outputs in memory, so that the stage's steps neither decode images nor run the tower
(`TrainConfig.cache_vision_features`). Sound only where the tower's output for an image is the same at every
step: the tower does not train (no unfrozen stage, no LoRA in it) and images have one fixed size. Every process
encodes every image, on its own accelerator where there is one, in the tower's dtype (fp32 under bf16 autocast).
Measured on the demo's stage 3 (2-core CPU, 16 images a step): 0.31 -> 0.26 s a step; caching 3000 images took 25 s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..models import ConvLlavaForConditionalGeneration
from ..processing import ConvLlavaProcessor, ImageLoadError

logger = logging.getLogger(__name__)


def cache_vision_features(
    model: ConvLlavaForConditionalGeneration,
    processor: ConvLlavaProcessor,
    paths: Sequence[Path],
    batch_size: int = 32,
) -> dict[str, torch.Tensor | None]:
    """str(path) -> the tower's output (N, C) on CPU, None for an image that could not be read."""
    tower = model.vision_tower
    training = [name for name, p in tower.named_parameters() if p.requires_grad]
    if training:
        raise ValueError(
            f"cache_vision_features needs a frozen vision tower, but {len(training)} of its parameters train "
            f"(e.g. {training[0]}): set trainable.vision_from_stage to null and keep LoRA out of the tower, or turn "
            "the cache off"
        )
    model.config.require_fixed_size("cache_vision_features", "turn the cache off")
    cache: dict[str, torch.Tensor | None] = {}
    was_training, home = tower.training, next(tower.parameters()).device
    tower.eval().to(_device())  # the Trainer has not placed the model yet: encode on this process's accelerator
    try:
        for start in tqdm(range(0, len(paths), batch_size), desc="caching vision features", unit="batch"):
            chunk = [str(p) for p in paths[start : start + batch_size]]
            cache.update(zip(chunk, _encode(tower, processor, chunk), strict=True))
    finally:
        tower.train(was_training).to(home)
    kept = [f for f in cache.values() if f is not None]
    megabytes = sum(f.numel() * f.element_size() for f in kept) / 2**20
    logger.info("cached the frozen vision tower's features of %d images (%.0f MB in memory)", len(kept), megabytes)
    return cache


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _encode(tower: torch.nn.Module, processor: ConvLlavaProcessor, paths: list[str]) -> list[torch.Tensor | None]:
    try:
        pixels = processor.image_processor(paths, return_tensors="pt")["pixel_values"]
    except ImageLoadError:  # find the unreadable ones one at a time
        if len(paths) == 1:
            logger.warning("feature cache: could not read %s; its samples will be skipped", paths[0])
            return [None]
        return [f for p in paths for f in _encode(tower, processor, [p])]
    param = next(tower.parameters())
    with torch.no_grad():
        features = tower(pixels.to(param.device, param.dtype))
    return list(features.cpu().unbind(0))
