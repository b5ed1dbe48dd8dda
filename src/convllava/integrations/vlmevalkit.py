"""vlmevalkit.py

A VLMEvalKit model (`vlmeval.vlm.base.BaseModel`) over `convllava.load`. VLMEvalKit has no plugin entry
point, so `register()` adds it to `vlmeval.config.supported_VLM` (the dict `run.py` and `inference.py` share)
and to `vlmeval.vlm` (for `--config` files); an instance can also be passed to `infer_data_job` directly:

    from convllava.integrations.vlmevalkit import ConvLlavaVLMEval, register
    register("ConvLLaVA-1536", model_path="ConvLLaVA/ConvLLaVA-sft-1536")   # then run.py --model ConvLLaVA-1536
"""

from __future__ import annotations

from functools import partial
from typing import Any

from vlmeval.vlm.base import BaseModel

from .. import load
from ..inference.pipeline import as_request


class ConvLlavaVLMEval(BaseModel):
    """Interleaved image-text messages -> one greedy answer (VLMEvalKit's `generate_inner` contract)."""

    INTERLEAVE = True
    allowed_types = ["text", "image"]

    def __init__(self, model_path: str, dtype: str | None = None, device: str | None = None,
                 max_new_tokens: int = 512, **generation: Any) -> None:  # fmt: skip
        super().__init__()
        self.pipeline = load(model_path, dtype=dtype, device=device)
        self.generation = {"max_new_tokens": max_new_tokens, "do_sample": False, **generation}

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        text, images = [], []
        for item in message:
            if item["type"] == "image":
                images.append(item["value"])
                text.append("<image>\n")
            elif item["type"] == "text":
                text.append(item["value"])
            else:
                raise ValueError(f"ConvLLaVA takes text and image messages, not {item['type']!r}")
        return self.pipeline.generate([as_request("".join(text).strip(), images)], **self.generation)[0]

    def chat_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        """Multi-turn: [{"role": "user" | "assistant", "content": [{"type", "value"}, ...]}, ...]."""
        messages, images = [], []
        for turn in message:
            parts = []
            for item in turn["content"]:
                if item["type"] == "image":
                    images.append(item["value"])
                    parts.append("<image>\n")
                else:
                    parts.append(item["value"])
            messages.append({"role": turn["role"], "content": "".join(parts).strip()})
        return self.pipeline.generate([as_request(messages, images)], **self.generation)[0]


def register(name: str = "ConvLLaVA", **kwargs: Any) -> None:
    """Make `name` resolvable by VLMEvalKit's `run.py --model NAME` and `--config` files."""
    import vlmeval.config
    import vlmeval.vlm

    vlmeval.config.supported_VLM[name] = partial(ConvLlavaVLMEval, **kwargs)
    vlmeval.vlm.ConvLlavaVLMEval = ConvLlavaVLMEval
