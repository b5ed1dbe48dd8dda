"""sub_configs.py

`as_config`: a nested config as composite configs receive it -- a config object, the dict config.json holds (its
`model_type` picks the class), or None (the default type) -- turned into a transformers config object. Used by
`ConvLlavaConfig` (vision and text configs) and `DinoSiglipVisionConfig` (its two towers).
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING


def as_config(value: Any, default_type: str) -> PretrainedConfig:
    """Turn a dict (as read from config.json) or None into a transformers config object."""
    if isinstance(value, PretrainedConfig):
        return value
    if value is None:
        return CONFIG_MAPPING[default_type]()
    if isinstance(value, dict):
        value = dict(value)
        model_type = value.pop("model_type", default_type)
        return CONFIG_MAPPING[model_type](**value)
    raise TypeError(f"expected a config object or a dict, got {type(value).__name__}")
