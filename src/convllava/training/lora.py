"""lora.py

LoRA / QLoRA through `peft` for the language model, and merging an adapter back into a full model.
The projector and (if the stage says so) vision stages train fully beside the adapters.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from .config import LoraOptions

logger = logging.getLogger(__name__)


def apply_lora(model: nn.Module, options: LoraOptions) -> nn.Module:
    """Wrap the language model's linear layers with LoRA adapters; keep other trainable parts trainable."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ValueError("LoRA needs peft: pip install 'convllava[train]'") from err
    trainable_before = {n for n, p in model.named_parameters() if p.requires_grad and ".language_model." not in n}
    targets = options.target_modules
    if targets == "all-linear":  # only the LM: never wrap the vision tower, projector or lm_head
        targets = r".*\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    config = LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=targets)
    peft_model = get_peft_model(model, config)
    for name, param in peft_model.named_parameters():
        if any(name.endswith(n) for n in trainable_before):
            param.requires_grad_(True)
    return peft_model


def merge_lora(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Load a saved adapter with its base model, merge the weights and save a plain convllava model."""
    from peft import PeftConfig, PeftModel

    from ..models import ConvLlavaForConditionalGeneration
    from ..processing import ConvLlavaProcessor

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base = ConvLlavaForConditionalGeneration.from_pretrained(peft_config.base_model_name_or_path)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(output_dir)
    processor_source = (
        adapter_dir if (adapter_dir / "processor_config.json").is_file() else peft_config.base_model_name_or_path
    )
    ConvLlavaProcessor.from_pretrained(processor_source).save_pretrained(output_dir)
    logger.info("merged %s into %s", adapter_dir, output_dir)
    return output_dir
