"""lora.py

LoRA / QLoRA through `peft` for the language model, and merging an adapter back into a full model.
The projector and (if the stage says so) vision stages train fully beside the adapters, as `modules_to_save`.
A trainable bare parameter (LLaVA-1.6's `image_newline`) cannot be one: it trains too, and is saved beside the
adapter in `non_lora_trainables.safetensors` (LLaVA's name for that file), which resuming and merging read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..models.freezing import image_newline
from ..models.zoo.checkpoint_io import write_state_dict
from .config import LoraOptions

EXTRA_TRAINABLES = "non_lora_trainables.safetensors"
_PEFT_PREFIX = "base_model.model."

logger = logging.getLogger(__name__)


def _fully_trainable_modules(model: nn.Module) -> list[str]:
    """Names of the parts that train fully beside the adapters (saved with the adapter as `modules_to_save`)."""
    modules = dict(model.named_modules())
    names = {id(module): name for name, module in modules.items()}
    candidates = ["model.projector", "lm_head"]
    candidates += [names[id(unit)] for unit in model.model.vision_tower.units]  # ConvNeXt stages or ViT layers
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
    newline = image_newline(model)
    newline_trains = newline is not None and newline.requires_grad
    peft_model = get_peft_model(model, config)  # freezes all but the adapters and modules_to_save
    if newline_trains:
        newline.requires_grad_(True)
        logger.info("image_newline trains fully too (saved beside the adapter in %s)", EXTRA_TRAINABLES)
    return peft_model


def extra_trainables(model: nn.Module) -> dict[str, nn.Parameter]:
    """A PEFT model's trainable parameters that its adapter file does not hold, by their plain-model names."""
    return {
        name.removeprefix(_PEFT_PREFIX): param
        for name, param in model.named_parameters()
        if param.requires_grad and "lora_" not in name and ".modules_to_save." not in name
    }


def save_extra_trainables(model: nn.Module, folder: str | Path) -> None:
    """Write `extra_trainables` next to the adapter (temp file, then rename); nothing when there are none."""
    extra = extra_trainables(model)
    if extra:
        write_state_dict({k: v.detach().cpu() for k, v in extra.items()}, folder, name=EXTRA_TRAINABLES)


def load_extra_trainables(model: nn.Module, folder: str | Path) -> list[str]:
    """Copy a saved `non_lora_trainables.safetensors` into `model` (a PEFT or a plain model); its keys, or []."""
    path = Path(folder) / EXTRA_TRAINABLES
    if not path.is_file():
        return []
    saved = load_file(str(path))
    params = {name.removeprefix(_PEFT_PREFIX): p for name, p in model.named_parameters()}
    unknown = sorted(set(saved) - set(params))
    if unknown:
        raise ValueError(f"{path} holds {unknown}, which this model does not have; is it the adapter's base model?")
    with torch.no_grad():
        for key, value in saved.items():
            params[key].copy_(value.to(params[key].dtype))
    return sorted(saved)


def merge_lora(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Load a saved adapter with its base model, merge the weights and save a plain convllava model."""
    from peft import PeftConfig, PeftModel

    from ..models import ConvLlavaForConditionalGeneration
    from ..processing import ConvLlavaProcessor

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base = ConvLlavaForConditionalGeneration.from_pretrained(peft_config.base_model_name_or_path)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    load_extra_trainables(merged, adapter_dir)
    merged.save_pretrained(output_dir)
    processor_source = (
        adapter_dir if (adapter_dir / "processor_config.json").is_file() else peft_config.base_model_name_or_path
    )
    ConvLlavaProcessor.from_pretrained(processor_source).save_pretrained(output_dir)
    logger.info("merged %s into %s", adapter_dir, output_dir)
    return output_dir
