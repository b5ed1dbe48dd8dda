"""image_processing.py

`ConvLlavaImageProcessor`: images -> normalised `pixel_values`, in three modes.

- `pad` (the original ConvLLaVA / LLaVA-1.5 path): paste centred on a square of colour (122, 116, 104),
  bicubic resize to S x S, rescale by 1/255, CLIP mean / std. Equal to `expand2square` followed by
  `CLIPImageProcessor` with `shortest_edge=S` and a centre crop of S.
- `resize`: bicubic resize straight to S x S (aspect ratio not kept).
- `native`: short side S, aspect kept, each side rounded to a multiple of the tower stride (64), no crop:
  the paper's Table 7 setting; an image gives (H/64) * (W/64) tokens. Images of different sizes are
  padded to a common size and `image_sizes` tells the model where each one ends.
- `anyres` (LLaVA-1.6): the image squashed to S x S, then S x S tiles of it resized into the best of
  `grid_pinpoints` and padded with black (models/anyres.py). `pixel_values` holds every image's tiles in
  order, and `image_sizes` each image's original (height, width), from which the tile counts follow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from ..constants import CLIP_MEAN, CLIP_STD
from ..models.anyres import select_best_resolution
from .image_io import DEFAULT_MAX_PIXELS, ImageSource, load_image

RESIZE_MODES: tuple[str, ...] = ("pad", "resize", "native", "anyres")


def expand_to_square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """The original `expand2square`: centre the image on a square canvas of side max(W, H)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def native_size(width: int, height: int, short_side: int, stride: int) -> tuple[int, int]:
    """(height, width) with the short side scaled to `short_side`, both rounded to a multiple of `stride`."""
    scale = short_side / min(width, height)
    return tuple(max(stride, round(side * scale / stride) * stride) for side in (height, width))  # type: ignore[return-value]


class ConvLlavaImageProcessor(BaseImageProcessor):
    """Preprocess images for ConvLLaVA; see the module docstring for the modes."""

    model_input_names = ["pixel_values", "image_sizes"]

    def __init__(
        self,
        size: int = 768,
        resize_mode: str = "pad",
        stride: int = 64,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        resample: int = Image.Resampling.BICUBIC,
        rescale_factor: float = 1 / 255,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        grid_pinpoints: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={resize_mode!r} is not one of {RESIZE_MODES}")
        if resize_mode == "anyres" and not grid_pinpoints:
            raise ValueError("resize_mode='anyres' needs grid_pinpoints, a list of (height, width) tile-grid sizes")
        self.grid_pinpoints = [[int(h), int(w)] for h, w in grid_pinpoints] if grid_pinpoints else None
        self.size = int(size)
        self.resize_mode = resize_mode
        self.stride = int(stride)
        self.image_mean = [float(x) for x in image_mean]
        self.image_std = [float(x) for x in image_std]
        self.resample = int(resample)
        self.rescale_factor = float(rescale_factor)
        self.max_pixels = max_pixels

    @property
    def pad_color(self) -> tuple[int, int, int]:
        return tuple(int(x * 255) for x in self.image_mean)  # type: ignore[return-value]

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) of the pixel_values for an input image of width x height."""
        if self.resize_mode == "native":
            return native_size(width, height, self.size, self.stride)
        return self.size, self.size

    def _normalise(self, image: Image.Image) -> np.ndarray:
        array = np.asarray(image, dtype=np.float32) * np.float32(self.rescale_factor)
        array = (array - np.asarray(self.image_mean, dtype=np.float32)) / np.asarray(self.image_std, dtype=np.float32)
        return array.transpose(2, 0, 1)

    def process_one(self, image: ImageSource) -> np.ndarray:
        """One image -> float32 array (3, H, W); in `anyres` mode (tiles, 3, S, S)."""
        image = load_image(image, self.max_pixels)
        if self.resize_mode == "anyres":
            return np.stack([self._normalise(tile) for tile in self.anyres_tiles(image)])
        if self.resize_mode == "pad":
            image = expand_to_square(image, self.pad_color)
        height, width = self.output_size(*image.size)
        if image.size != (width, height):
            image = image.resize((width, height), resample=Image.Resampling(self.resample))
        return self._normalise(image)

    def anyres_tiles(self, image: Image.Image) -> list[Image.Image]:
        """The base tile (the image squashed to S x S), then the grid's tiles row by row (LLaVA-1.6's
        `process_anyres_image`: resized to fit the chosen resolution, centred on black)."""
        resample = Image.Resampling(self.resample)
        width, height = image.size
        target_h, target_w = select_best_resolution(height, width, self.grid_pinpoints or [])
        if target_w / width < target_h / height:
            new_w, new_h = target_w, min(math.ceil(height * target_w / width), target_h)
        else:
            new_w, new_h = min(math.ceil(width * target_h / height), target_w), target_h
        canvas = Image.new("RGB", (target_w, target_h), (0, 0, 0))
        canvas.paste(
            image.resize((new_w, new_h), resample=resample), ((target_w - new_w) // 2, (target_h - new_h) // 2)
        )
        tiles = [image.resize((self.size, self.size), resample=resample)]
        for top in range(0, target_h, self.size):
            for left in range(0, target_w, self.size):
                tiles.append(canvas.crop((left, top, left + self.size, top + self.size)))
        return tiles

    def __call__(self, images: ImageSource | Sequence[ImageSource], **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(
        self, images: ImageSource | Sequence[ImageSource], return_tensors: str | None = "pt"
    ) -> BatchFeature:
        """Images (one or a list) -> BatchFeature with `pixel_values` (N, 3, H, W) and, in native mode, `image_sizes`."""
        if isinstance(images, (str, Image.Image)) or not isinstance(images, Sequence):
            images = [images]
        if self.resize_mode == "anyres":  # loaded first: the original sizes go along
            images = [load_image(image, self.max_pixels) for image in images]
        arrays = [self.process_one(image) for image in images]
        data: dict[str, Any] = {}
        if self.resize_mode == "anyres":
            data["pixel_values"] = (
                np.concatenate(arrays) if arrays else np.zeros((0, 3, self.size, self.size), np.float32)
            )
            data["image_sizes"] = np.asarray([(i.height, i.width) for i in images], dtype=np.int64).reshape(-1, 2)
        elif self.resize_mode == "native":
            sizes = [a.shape[1:] for a in arrays]
            max_h, max_w = max(s[0] for s in sizes), max(s[1] for s in sizes)
            padded = np.zeros((len(arrays), 3, max_h, max_w), dtype=np.float32)
            for i, a in enumerate(arrays):
                padded[i, :, : a.shape[1], : a.shape[2]] = a
            data["pixel_values"] = padded
            data["image_sizes"] = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        else:
            data["pixel_values"] = np.stack(arrays) if arrays else np.zeros((0, 3, self.size, self.size), np.float32)
        if return_tensors == "pt":
            data = {k: torch.from_numpy(v) for k, v in data.items()}
        elif return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt', 'np' or None")
        return BatchFeature(data=data)
