"""outputs.py

Typed outputs of the ConvLLaVA models (transformers `ModelOutput` dataclasses).

transformers 5.24 renamed the KV cache from `past_key_values` to `cache` (in model outputs and forward
arguments); `CACHE_FIELD` is the name the installed version uses, so the outputs carry it under the same name as
the language model's own (and `generate` finds it) on 5.16 .. 5.23 and on 5.24+.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils import ModelOutput

CACHE_FIELD = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


def _output_class(name: str, fields: list[tuple[str, Any]], doc: str) -> type[ModelOutput]:
    """A ModelOutput dataclass whose fields all default to None (the cache one named `CACHE_FIELD`)."""
    named = [(CACHE_FIELD if n == "cache" else n, t, field(default=None)) for n, t in fields]
    cls = make_dataclass(name, named, bases=(ModelOutput,))
    cls.__module__, cls.__doc__ = __name__, doc
    return cls


#: Output of `ConvLlavaModel`: the LM's hidden states plus the projected image features that were spliced in.
#: `image_hidden_states` has shape (total visual tokens in the batch, LM hidden size), in input order.
ConvLlavaModelOutputWithPast = _output_class(
    "ConvLlavaModelOutputWithPast",
    [
        ("last_hidden_state", torch.FloatTensor | None),
        ("cache", Cache | None),
        ("hidden_states", tuple[torch.FloatTensor, ...] | None),
        ("attentions", tuple[torch.FloatTensor, ...] | None),
        ("image_hidden_states", torch.FloatTensor | None),
    ],
    "Output of `ConvLlavaModel`: the LM's hidden states, its cache and the spliced image features.",
)

#: Output of `ConvLlavaForConditionalGeneration`: loss (when `labels` are given), logits, cache, features.
ConvLlavaCausalLMOutputWithPast = _output_class(
    "ConvLlavaCausalLMOutputWithPast",
    [
        ("loss", torch.FloatTensor | None),
        ("logits", torch.FloatTensor | None),
        ("cache", Cache | None),
        ("hidden_states", tuple[torch.FloatTensor, ...] | None),
        ("attentions", tuple[torch.FloatTensor, ...] | None),
        ("image_hidden_states", torch.FloatTensor | None),
    ],
    "Output of `ConvLlavaForConditionalGeneration`: loss (with `labels`), logits, cache and image features.",
)
