"""info.py

`convllava info PRESET_OR_PATH [--image-size S]`: one JSON object describing a model's size and its
visual-token budget. Presets and configs are instantiated on the meta device, so a 7B model answers in
seconds with no memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..models import PRESETS, ConvLlavaConfig, ConvLlavaForConditionalGeneration, get_preset


def resolve_config(name_or_path: str) -> ConvLlavaConfig:
    """A preset name, a local model directory, or a Hugging Face Hub id (needs internet)."""
    if name_or_path in PRESETS:
        return get_preset(name_or_path)
    if Path(name_or_path).exists() and not (Path(name_or_path) / "config.json").is_file():
        raise ValueError(f"{name_or_path!r} is a path without a config.json; point at a saved model directory")
    try:
        return ConvLlavaConfig.from_pretrained(name_or_path)
    except OSError as err:
        raise ValueError(
            f"{name_or_path!r} is neither a preset ({', '.join(sorted(PRESETS))}), a model directory, nor a "
            f"reachable Hub repository: {err}"
        ) from None


def model_info(config: ConvLlavaConfig, image_size: int | None = None) -> dict[str, Any]:
    """Parameter counts (meta-device build) and visual tokens for an image of `image_size` px (square)."""
    size = image_size or config.image_size
    with torch.device("meta"):
        model = ConvLlavaForConditionalGeneration(config)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    vision, projector = count(model.model.vision_tower), count(model.model.projector)
    total = count(model)
    return {
        "model_type": config.model_type,
        "vision_tower_type": config.vision_tower_type,
        "projector_type": config.projector_type,
        "image_size": size,
        "image_resize_mode": config.image_resize_mode,
        "visual_tokens": model.model.num_image_tokens(size, size),
        "vision_stride": config.vision_stride,
        "vision_hidden_sizes": list(config.vision_config.hidden_sizes),
        "vision_depths": list(config.vision_config.depths),
        "vision_params": vision,
        "projector_params": projector,
        "language_params": total - vision - projector,
        "total_params": total,
        "text_model_type": config.text_config.model_type,
        "text_hidden_size": config.text_config.hidden_size,
        "text_layers": config.text_config.num_hidden_layers,
        "vocab_size": config.text_config.vocab_size,
        "image_token_id": config.image_token_id,
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print parameter counts and visual tokens of a preset or model")
    parser.add_argument("model", help=f"a preset ({', '.join(sorted(PRESETS))}), a model directory or a Hub id")
    parser.add_argument(
        "--image-size", type=int, default=None, help="square input side in pixels (default: the model's)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.image_size is not None and args.image_size <= 0:
        raise ValueError(f"--image-size must be positive, got {args.image_size}")
    print(json.dumps(model_info(resolve_config(args.model), args.image_size), indent=2))
    return 0
