"""hf_adapter.py

Run any transformers `AutoModelForImageTextToText` checkpoint (llava-hf and the like) through our
pipeline, batch job and server: `HFProcessorAdapter` gives a transformers processor the small interface
`ConvLlavaPipeline` uses (messages with `<image>` placeholders, left-padded batches, prompt counting).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..constants import DEFAULT_IMAGE_TOKEN
from ..processing import load_image, normalize_messages


def _parts(content: str) -> list[dict[str, str]]:
    """'<image>\\nWhat is it?' -> [{"type": "image"}, {"type": "text", "text": "What is it?"}]."""
    parts: list[dict[str, str]] = []
    for index, segment in enumerate(content.split(DEFAULT_IMAGE_TOKEN)):
        if index:
            parts.append({"type": "image"})
        if segment.strip("\n"):
            parts.append({"type": "text", "text": segment.strip("\n")})
    return parts


class HFProcessorAdapter:
    """Wraps a transformers multimodal processor that has a chat template."""

    def __init__(self, processor: Any) -> None:
        if getattr(processor, "chat_template", None) is None:
            raise ValueError("this checkpoint's processor has no chat_template; the pipeline needs one")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # batched generation
        self.image_token = DEFAULT_IMAGE_TOKEN  # the placeholder our messages use

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
        conversation = [{"role": m.role, "content": _parts(m.content)} for m in normalize_messages(messages)]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt)

    def __call__(self, text: Sequence[str], images: Sequence[Any] | None = None) -> Any:
        flat = [load_image(i) for group in (images or []) for i in (group if isinstance(group, list) else [group])]
        return self.processor(text=list(text), images=flat or None, padding=True, return_tensors="pt")

    def count_prompt_tokens(self, messages: Sequence[Mapping[str, Any]], images: Sequence[Any] = ()) -> int:
        prompt = self.apply_chat_template(messages, add_generation_prompt=True)
        return int(self([prompt], [list(images)] if images else None)["input_ids"].shape[1])
