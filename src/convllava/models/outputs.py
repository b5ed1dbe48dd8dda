"""outputs.py

Typed outputs of the ConvLLaVA models (transformers `ModelOutput` dataclasses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput


@dataclass
class ConvLlavaModelOutputWithPast(ModelOutput):
    """Output of `ConvLlavaModel`: the LM's hidden states plus the projected image features that were spliced in.

    `image_hidden_states` has shape (total visual tokens in the batch, LM hidden size), in input order.
    """

    last_hidden_state: torch.FloatTensor | None = None
    past_key_values: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    image_hidden_states: torch.FloatTensor | None = None


@dataclass
class ConvLlavaCausalLMOutputWithPast(ModelOutput):
    """Output of `ConvLlavaForConditionalGeneration`: loss (when `labels` are given), logits, cache, features."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    image_hidden_states: torch.FloatTensor | None = None
