"""processing/

Everything between raw inputs and model tensors: safe image loading, the image processor, conversation
templates, tokenization with image placeholders, and the `ConvLlavaProcessor` that ties them together.
"""

from __future__ import annotations

from .image_io import DEFAULT_MAX_PIXELS, ImageLoadError, load_image, load_image_bytes
from .image_processing import ConvLlavaImageProcessor, expand_to_square, native_size
from .processing_convllava import ConvLlavaProcessor
from .templates import TEMPLATES, Message, RenderedPrompt, TemplateError, get_template, normalize_messages
from .tokenization import encode_with_images
from .tokenizer import add_image_token, train_tokenizer

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "TEMPLATES",
    "ConvLlavaImageProcessor",
    "ConvLlavaProcessor",
    "ImageLoadError",
    "Message",
    "RenderedPrompt",
    "TemplateError",
    "add_image_token",
    "encode_with_images",
    "expand_to_square",
    "get_template",
    "load_image",
    "load_image_bytes",
    "native_size",
    "normalize_messages",
    "train_tokenizer",
]
