"""conftest.py

Shared fixtures: a locally trained tokenizer, the tiny preset bound to it, a seeded tiny model, a
processor, and synthetic images. Nothing is downloaded: the hub is forced offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from convllava import ConvLlavaForConditionalGeneration, ConvLlavaProcessor, get_preset
from convllava.processing import train_tokenizer
from helpers import random_image

CORPUS = [
    "What color is the square? The square is red.",
    "How many circles are there? There are three circles.",
    "Is there a blue triangle in the image? Yes. No.",
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: ASSISTANT: Describe the picture. A green circle at the top left, 0123456789.",
]


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(CORPUS * 20, vocab_size=512)


@pytest.fixture(scope="session")
def tiny_config(tokenizer):
    config = get_preset("convllava-tiny")
    assert tokenizer.convert_tokens_to_ids("<image>") == config.image_token_id
    return config


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return ConvLlavaForConditionalGeneration(tiny_config).eval()


@pytest.fixture(scope="session")
def processor(tiny_config, tokenizer):
    return ConvLlavaProcessor.from_model_config(tiny_config, tokenizer)


@pytest.fixture
def saved_tiny(tiny_model, processor, tmp_path):
    """The session's tiny model and processor as a from_pretrained folder."""
    folder = tmp_path / "init"
    tiny_model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def images():
    return [random_image(120, 200, seed=1), random_image(256, 256, seed=2), random_image(300, 90, seed=3)]
