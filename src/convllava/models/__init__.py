"""models/

Model definitions: configuration, vision towers, projectors, the ConvLLaVA model classes and presets.
"""

from __future__ import annotations

from .configuration_convllava import ConvLlavaConfig
from .freezing import PARTS, log_trainable_summary, set_trainable, trainable_summary
from .modeling_convllava import ConvLlavaForConditionalGeneration, ConvLlavaModel, ConvLlavaPreTrainedModel
from .outputs import ConvLlavaCausalLMOutputWithPast, ConvLlavaModelOutputWithPast
from .presets import PRESETS, get_preset
from .projectors import PROJECTORS, build_projector, get_projector_spec
from .vision import VISION_TOWERS, ClipVisionTower, ConvNextVisionTower, add_convnext_stages, build_vision_tower

__all__ = [
    "PARTS",
    "PRESETS",
    "PROJECTORS",
    "VISION_TOWERS",
    "ClipVisionTower",
    "ConvLlavaCausalLMOutputWithPast",
    "ConvLlavaConfig",
    "ConvLlavaForConditionalGeneration",
    "ConvLlavaModel",
    "ConvLlavaModelOutputWithPast",
    "ConvLlavaPreTrainedModel",
    "ConvNextVisionTower",
    "add_convnext_stages",
    "build_projector",
    "build_vision_tower",
    "get_preset",
    "get_projector_spec",
    "log_trainable_summary",
    "set_trainable",
    "trainable_summary",
]
