"""assembly.py

Build a new model from parts -- a pretrained vision tower (transformers format) and any Hugging Face causal
LM -- as stage 1 of the training recipe does. A 4-stage ConvNeXt gets its new stages (`add_convnext_stages`,
default init); a CLIP, SigLIP or DINOv2 ViT is used as it is, features from its second-to-last layer (LLaVA's
and prismatic's choice); `DINOV2+SIGLIP` (two checkpoints joined by "+") builds prismatic's fused tower. The
projector is new, the LM keeps its weights. `tower_image_stats` reads the tower's own mean / std for the processor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    ConvNextModel,
    Dinov2Model,
    Dinov2WithRegistersModel,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    SiglipVisionModel,
)
from transformers.utils import cached_file

from ..processing.tokenizer import add_image_token
from .configuration_convllava import ConvLlavaConfig, check_image_size
from .modeling_convllava import ConvLlavaForConditionalGeneration
from .vision import VISION_TOWERS, ConvNextVisionTower, DinoSiglipVisionConfig, add_convnext_stages

logger = logging.getLogger(__name__)

#: transformers model_type of a tower checkpoint -> (our vision_tower_type, the class that reads it).
VIT_CHECKPOINTS: dict[str, tuple[str, type]] = {
    "clip": ("clip", CLIPVisionModel),
    "clip_vision_model": ("clip", CLIPVisionModel),
    "siglip": ("siglip", SiglipVisionModel),
    "siglip_vision_model": ("siglip", SiglipVisionModel),
    "dinov2": ("dinov2", Dinov2Model),
    "dinov2_with_registers": ("dinov2", Dinov2WithRegistersModel),
}


def _vit_tower(name: str, model_type: str, image_size: int, dtype: torch.dtype | None) -> tuple[str, Any, dict]:
    """(vision_tower_type, vision config, state with our keys) of a ViT checkpoint."""
    tower_type, reader = VIT_CHECKPOINTS[model_type]
    vit = reader.from_pretrained(name, dtype=dtype)
    config: PretrainedConfig = vit.config
    if image_size % config.patch_size:
        raise ValueError(f"image_size={image_size} is not a multiple of {name}'s patch size {config.patch_size}")
    if image_size != config.image_size:
        # the tower keeps its trained size (and position table) and interpolates in forward, as transformers does
        logger.warning("%s was trained at %d px; at %d px its position embeddings are interpolated",
                       name, config.image_size, image_size)  # fmt: skip
    state = {k.removeprefix("vision_model."): v for k, v in vit.state_dict().items()}
    return tower_type, config, state


def _fused_tower(names: list[str], image_size: int, dtype: torch.dtype | None) -> tuple[str, Any, dict]:
    """prismatic's fused tower from a DINOv2 and a SigLIP checkpoint (in either order)."""
    parts: dict[str, tuple[str, Any, dict]] = {}
    for name in names:
        model_type = AutoConfig.from_pretrained(name).model_type
        kind = VIT_CHECKPOINTS.get(model_type, ("",))[0]
        if kind not in ("dinov2", "siglip") or kind in parts:
            raise ValueError(
                f"a fused tower joins one DINOv2 and one SigLIP checkpoint with '+'; {name} is a {model_type!r} model"
            )
        parts[kind] = (name, *_vit_tower(name, model_type, image_size, dtype)[1:])
    if len(parts) != 2:
        raise ValueError(f"a fused tower joins one DINOv2 and one SigLIP checkpoint with '+', got {names}")
    stats = {
        f"{kind}_{k.removeprefix('image_')}": v for kind in parts for k, v in tower_image_stats(parts[kind][0]).items()
    }
    config = DinoSiglipVisionConfig(dino_config=parts["dinov2"][1], siglip_config=parts["siglip"][1], **stats)
    state = {
        f"{branch}.{k}": v
        for branch, kind in (("dino", "dinov2"), ("siglip", "siglip"))
        for k, v in parts[kind][2].items()
    }
    return "dinosiglip", config, state


def assemble_from_parts(
    vision_tower: str,
    language_model: str,
    projector_type: str = "mlp2x_gelu",
    dense_connector: str | None = None,
    image_size: int = 768,
    new_stage_depths: Sequence[int] = (6,),
    new_stage_widths: Sequence[int] = (3072,),
    image_resize_mode: str = "pad",
    dtype: torch.dtype | None = None,
) -> tuple[ConvLlavaForConditionalGeneration, PreTrainedTokenizerBase]:
    """Return (model, tokenizer with `<image>`). Paths or Hub ids; no stages are added if depths is empty (a ViT
    tower never gets any). `dense_connector` ("dci" / "sci", ViT towers only) concatenates the means of earlier
    layers to the selected one's features (models/vision/dense.py)."""
    fused = "+" in vision_tower and not Path(vision_tower).exists()  # "DINOV2+SIGLIP": two checkpoints
    model_type = "fused" if fused else AutoConfig.from_pretrained(vision_tower).model_type
    if model_type == "fused":
        tower_type, vision_config, vision_state = _fused_tower(vision_tower.split("+"), image_size, dtype)
    elif model_type == "convnext":
        tower_type = "convnext"
        convnext = ConvNextModel.from_pretrained(vision_tower, dtype=dtype)
        vision_config = convnext.config
        tower = ConvNextVisionTower(vision_config)
        missing, unexpected = tower.load_state_dict(convnext.state_dict(), strict=False)
        if missing or any(not k.startswith("layernorm.") for k in unexpected):
            raise ValueError(f"{vision_tower} is not a ConvNeXt checkpoint this tower can load (missing {missing[:3]})")
        if new_stage_depths:
            add_convnext_stages(tower, new_stage_depths, new_stage_widths)
        check_image_size(vision_config, image_size, vision_tower, image_resize_mode)  # before the (slow) LM load
        vision_state = tower.state_dict()
        vision_config.image_size = image_size
    elif model_type in VIT_CHECKPOINTS:
        tower_type, vision_config, vision_state = _vit_tower(vision_tower, model_type, image_size, dtype)
    else:
        raise ValueError(
            f"{vision_tower} is a {model_type!r} model; a tower must be one of convnext, "
            f"{', '.join(sorted(VIT_CHECKPOINTS))} (our tower types: {sorted(VISION_TOWERS)})"
        )

    llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    if tokenizer.pad_token is None:  # Vicuna / Llama: pad = unk (id 0), as the original training code sets
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    image_token_id = add_image_token(tokenizer)
    config = ConvLlavaConfig(
        vision_config=vision_config,
        text_config=llm.config,
        vision_tower_type=tower_type,
        vision_feature_layer=-1 if tower_type == "convnext" else -2,
        projector_type=projector_type,
        dense_connector=dense_connector,
        image_token_id=image_token_id,
        image_size=image_size,
        image_resize_mode=image_resize_mode,
    )
    model = ConvLlavaForConditionalGeneration(config)
    missing, _ = model.model.vision_tower.load_state_dict(vision_state, strict=False)
    if missing:  # a ViT checkpoint also holds its final norm / head, which the tower never runs
        raise ValueError(f"{vision_tower} lacks weights the tower needs: {missing[:3]}")
    model.model.language_model.load_state_dict(llm.get_decoder().state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    for module in model.model.projector.modules():  # PyTorch default init, as the original builds it fresh
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    if dtype is not None:
        model.to(dtype)
    logger.info("assembled %s + %s with a new %s projector", vision_tower, language_model, projector_type)
    return model, tokenizer


def tower_image_stats(vision_tower: str) -> dict[str, list[float]]:
    """`image_mean` / `image_std` from the tower's `preprocessor_config.json`, or {} (the processor's CLIP default)."""
    path = cached_file(vision_tower, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False)
    if path is None:
        return {}
    config = json.loads(Path(path).read_text())
    return {k: config[k] for k in ("image_mean", "image_std") if k in config}
