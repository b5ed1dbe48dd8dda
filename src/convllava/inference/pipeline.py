"""pipeline.py

`ConvLlavaPipeline`: a model and its processor, with `chat` (multi-turn, several images), batched
`generate` (left-padded) and `stream` (text pieces as they are decoded). `convllava.load` returns one;
it also unpacks as `model, processor`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TextIteratorStreamer

from ..processing import ConvLlavaProcessor
from ..processing.image_io import ImageSource

#: Greedy decoding unless the caller asks otherwise (transformers generation keywords pass through).
DEFAULT_GENERATION: dict[str, Any] = {"max_new_tokens": 256, "do_sample": False}


@dataclass
class Request:
    """One generation request: chat messages (with `<image>` placeholders or image parts) and their images."""

    messages: Sequence[Mapping[str, Any]]
    images: Sequence[ImageSource] = field(default_factory=list)


@dataclass
class ConvLlavaPipeline:
    model: Any
    processor: ConvLlavaProcessor

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.processor))

    # --- helpers ------------------------------------------------------------------------------------------
    def _inputs(self, requests: Sequence[Request]) -> dict[str, torch.Tensor]:
        prompts = [self.processor.apply_chat_template(list(r.messages), add_generation_prompt=True) for r in requests]
        images = [list(r.images) for r in requests]
        batch = self.processor(text=prompts, images=images if any(images) else None)
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    def _generation_kwargs(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        tokenizer = self.processor.tokenizer
        kwargs = {**DEFAULT_GENERATION, "pad_token_id": tokenizer.pad_token_id, **overrides}
        if tokenizer.eos_token_id is not None:
            kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
        return kwargs

    def _decode(self, ids: torch.Tensor) -> str:
        return self.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # --- public API ---------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request | Mapping[str, Any]], **generation: Any) -> list[str]:
        """Answer a batch of requests in one left-padded `generate` call."""
        requests = [r if isinstance(r, Request) else Request(**r) for r in requests]
        if not requests:
            return []
        inputs = self._inputs(requests)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self._generation_kwargs(generation))
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [self._decode(row) for row in new_tokens]

    def loglikelihood(self, request: Request, continuation: str) -> tuple[float, int, bool]:
        """Log-probability of `continuation` as the assistant's answer to `request`: (sum of token log-probs,
        number of continuation tokens, whether greedy decoding would produce exactly those tokens)."""
        context = self.processor.apply_chat_template(list(request.messages), add_generation_prompt=True)
        images = [list(request.images)] if request.images else None
        context_len = self.processor(text=[context], images=images)["input_ids"].shape[1]
        inputs = self.processor(text=[context + continuation], images=images)
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        targets = inputs["input_ids"][0, context_len:]
        if targets.numel() == 0:
            raise ValueError(f"continuation {continuation!r} adds no tokens to the context")
        with torch.inference_mode():
            logits = self.model(**inputs).logits[0, context_len - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]
        greedy = bool((logits.argmax(-1) == targets).all())
        return float(logprobs.sum()), int(targets.numel()), greedy

    def chat(
        self, messages: Sequence[Mapping[str, Any]] | str, images: Sequence[ImageSource] = (), **generation: Any
    ) -> str:
        """One answer; `messages` may be a plain question (an `<image>` is added per image when absent)."""
        return self.generate([as_request(messages, images)], **generation)[0]

    def stream(
        self, messages: Sequence[Mapping[str, Any]] | str, images: Sequence[ImageSource] = (), **generation: Any
    ) -> Iterator[str]:
        """Yield the answer in pieces as tokens are decoded (generation runs in a background thread)."""
        inputs = self._inputs([as_request(messages, images)])
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {**inputs, **self._generation_kwargs(generation), "streamer": streamer}
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as err:  # re-raised in the caller's thread
                errors.append(err)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise errors[0]


def as_request(messages: Sequence[Mapping[str, Any]] | str, images: Sequence[ImageSource]) -> Request:
    """A question or a message list -> `Request`; a plain question gets one `<image>` per image it lacks."""
    if isinstance(messages, str):
        text = messages
        missing = len(images) - text.count("<image>")
        if missing > 0:
            text = "<image>\n" * missing + text
        messages = [{"role": "user", "content": text}]
    return Request(list(messages), list(images))
