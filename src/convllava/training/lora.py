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


def _fully_trainable_modules(model: nn.Module) -> list[str]:
    """Names of the parts that train fully beside the adapters (saved with the adapter as `modules_to_save`)."""
    candidates = ["model.projector", "lm_head"]
    tower = model.model.vision_tower  # ConvNeXt stages or ViT layers
    candidates += [f"model.vision_tower.{tower.units_path}.{i}" for i in range(len(tower.units))]
    modules = dict(model.named_modules())
    return [n for n in candidates if all(p.requires_grad for p in modules[n].parameters())]


def apply_lora(model: nn.Module, options: LoraOptions) -> nn.Module:
    """Wrap the language model's linear layers with LoRA adapters; keep the other trainable parts training."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ValueError("LoRA needs peft: pip install 'convllava[train]'") from err
    targets = options.target_modules
    if targets == "all-linear":  # only the LM: never wrap the vision tower, projector or lm_head
        targets = r".*\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    config = LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=targets,
        modules_to_save=_fully_trainable_modules(model),
    )
    logger.info(
        "LoRA r=%d alpha=%d on the language model; fully trained: %s", options.r, options.alpha, config.modules_to_save
    )
    return get_peft_model(model, config)


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
