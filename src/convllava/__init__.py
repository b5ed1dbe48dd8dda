"""convllava

Build, train, evaluate and serve ConvLLaVA (hierarchical ConvNeXt) and LLaVA-family multimodal models,
Hugging Face native. Importing the package registers `convllava` with the transformers Auto classes:
`AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`, `AutoModelForCausalLM`, `AutoImageProcessor`
and `AutoProcessor`.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

# From its module: transformers 5.16 exports a torchvision-requiring placeholder at the top level.
from transformers.models.auto.image_processing_auto import AutoImageProcessor

from .models import (
    PRESETS,
    ConvLlavaConfig,
    ConvLlavaForConditionalGeneration,
    ConvLlavaModel,
    add_convnext_stages,
    get_preset,
)
from .models.vision import DinoSiglipVisionConfig
from .models.zoo import load
from .processing import ConvLlavaImageProcessor, ConvLlavaProcessor, ImageLoadError, load_image

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    AutoConfig.register(ConvLlavaConfig.model_type, ConvLlavaConfig, exist_ok=True)
    AutoConfig.register(DinoSiglipVisionConfig.model_type, DinoSiglipVisionConfig, exist_ok=True)
    AutoModel.register(ConvLlavaConfig, ConvLlavaModel, exist_ok=True)
    AutoModelForImageTextToText.register(ConvLlavaConfig, ConvLlavaForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(ConvLlavaConfig, ConvLlavaForConditionalGeneration, exist_ok=True)
    AutoImageProcessor.register(
        ConvLlavaConfig, image_processor_classes={"pil": ConvLlavaImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(ConvLlavaConfig, ConvLlavaProcessor, exist_ok=True)


_register_auto_classes()

__all__ = [
    "PRESETS",
    "ConvLlavaConfig",
    "ConvLlavaForConditionalGeneration",
    "ConvLlavaImageProcessor",
    "ConvLlavaModel",
    "ConvLlavaProcessor",
    "ImageLoadError",
    "__version__",
    "add_convnext_stages",
    "get_preset",
    "load",
    "load_image",
]
