"""assembly.py

Build a new ConvLLaVA model from parts -- a pretrained 4-stage ConvNeXt (transformers format) and any
Hugging Face causal LM -- as stage 1 of the training recipe does: the ConvNeXt gets its new stages
(`add_convnext_stages`, default init), the projector is new, the LM keeps its weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, ConvNextModel, PreTrainedTokenizerBase

from ..processing.tokenizer import add_image_token
from .configuration_convllava import ConvLlavaConfig
from .modeling_convllava import ConvLlavaForConditionalGeneration
from .vision import ConvNextVisionTower, add_convnext_stages

logger = logging.getLogger(__name__)


def assemble_from_parts(
    vision_tower: str,
    language_model: str,
    projector_type: str = "mlp2x_gelu",
    image_size: int = 768,
    new_stage_depths: Sequence[int] = (6,),
    new_stage_widths: Sequence[int] = (3072,),
    image_resize_mode: str = "pad",
    dtype: torch.dtype | None = None,
) -> tuple[ConvLlavaForConditionalGeneration, PreTrainedTokenizerBase]:
    """Return (model, tokenizer with `<image>`). Paths or Hub ids; no stages are added if depths is empty."""
    convnext = ConvNextModel.from_pretrained(vision_tower, dtype=dtype)
    vision_config = convnext.config
    tower = ConvNextVisionTower(vision_config)
    missing, unexpected = tower.load_state_dict(convnext.state_dict(), strict=False)
    if missing or any(not k.startswith("layernorm.") for k in unexpected):
        raise ValueError(f"{vision_tower} is not a ConvNeXt checkpoint this tower can load (missing {missing[:3]})")
    if new_stage_depths:
        add_convnext_stages(tower, new_stage_depths, new_stage_widths)
    vision_config.image_size = image_size

    llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    if tokenizer.pad_token is None:  # Vicuna / Llama: pad = unk (id 0), as the original training code sets
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    image_token_id = add_image_token(tokenizer)
    config = ConvLlavaConfig(
        vision_config=vision_config,
        text_config=llm.config,
        projector_type=projector_type,
        image_token_id=image_token_id,
        image_size=image_size,
        image_resize_mode=image_resize_mode,
    )
    model = ConvLlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(tower.state_dict())
    model.model.language_model.load_state_dict(llm.get_decoder().state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    for module in model.model.projector.modules():  # PyTorch default init, as the original builds it fresh
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    if dtype is not None:
        model.to(dtype)
    logger.info("assembled %s + %s with a new %s projector", vision_tower, language_model, projector_type)
    return model, tokenizer
