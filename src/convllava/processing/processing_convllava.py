"""processing_convllava.py

`ConvLlavaProcessor` = tokenizer + `ConvLlavaImageProcessor` + conversation template.

`processor(text=..., images=...)` expands every `<image>` into exactly as many image-token ids as the
model will produce visual features for that image (H/64 * W/64 for the 5-stage ConvNeXt and a
token-preserving projector), pads the batch (left padding by default, for generation) and returns a
`BatchFeature` ready for `model(**inputs)` or `model.generate(**inputs)`. `apply_chat_template` and
`build_training_example` render conversations with the template (`vicuna_v1` by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

from ..constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX
from ..models.anyres import anyres_token_count
from ..models.projectors import get_projector_spec
from .image_io import ImageSource
from .image_processing import ConvLlavaImageProcessor
from .templates import RenderedPrompt, get_template
from .tokenization import encode_with_images


class ConvLlavaProcessor(ProcessorMixin):
    """Tokenizer + image processor + template for ConvLLaVA models."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(
        self,
        image_processor: ConvLlavaImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        template: str = "vicuna_v1",
        image_token: str = DEFAULT_IMAGE_TOKEN,
        projector_type: str = "mlp2x_gelu",
        **kwargs: Any,
    ) -> None:
        get_template(template)  # fail early on an unknown name
        get_projector_spec(projector_type)
        self.template = template
        self.image_token = image_token
        self.projector_type = projector_type
        super().__init__(image_processor, tokenizer, **kwargs)
        if image_token not in self.tokenizer.get_vocab():
            raise ValueError(
                f"the tokenizer has no {image_token!r} token; add it with "
                "convllava.processing.add_image_token(tokenizer) before building the processor"
            )
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(image_token)

    @classmethod
    def from_model_config(
        cls, config: Any, tokenizer: PreTrainedTokenizerBase, template: str = "vicuna_v1", **image_kwargs: Any
    ) -> ConvLlavaProcessor:
        """A processor whose image size, resize mode, stride and projector match a `ConvLlavaConfig`."""
        if config.image_resize_mode == "anyres":
            image_kwargs.setdefault("grid_pinpoints", config.image_grid_pinpoints)
        if config.vision_tower_type == "dinosiglip":  # the fused tower normalises each branch itself
            image_kwargs.setdefault("image_mean", [0.0, 0.0, 0.0])
            image_kwargs.setdefault("image_std", [1.0, 1.0, 1.0])
        image_processor = ConvLlavaImageProcessor(
            size=config.image_size, resize_mode=config.image_resize_mode, stride=config.vision_stride, **image_kwargs
        )
        processor = cls(image_processor, tokenizer, template=template, projector_type=config.projector_type)
        if processor.image_token_id != config.image_token_id:
            raise ValueError(
                f"the tokenizer maps {processor.image_token!r} to id {processor.image_token_id} but the model "
                f"config expects image_token_id={config.image_token_id}; set config.image_token_id to match"
            )
        return processor

    def with_template(self, template: str) -> ConvLlavaProcessor:
        """The same processor with another conversation template (a `TEMPLATES` name); itself if unchanged."""
        if template == self.template:
            return self
        return type(self)(
            self.image_processor, self.tokenizer, template=template, image_token=self.image_token,
            projector_type=self.projector_type,
        )  # fmt: skip

    # --- token counting -----------------------------------------------------------------------------------
    def num_image_tokens(self, height: int, width: int) -> int:
        """Visual tokens for pixel_values of height x width (grid = size // stride, then the projector's count);
        in `anyres` mode, for an original image of height x width."""
        ip = self.image_processor
        if ip.resize_mode == "anyres":
            side = ip.size // ip.stride
            if not get_projector_spec(self.projector_type).keeps_grid(side):
                raise ValueError(f"anyres needs a token-preserving projector, not {self.projector_type!r}")
            return anyres_token_count(height, width, ip.grid_pinpoints, ip.size, side)
        return get_projector_spec(self.projector_type).num_tokens(height // ip.stride, width // ip.stride)

    def _tokens_per_image(self, image_inputs: Mapping[str, torch.Tensor]) -> list[int]:
        if "image_sizes" in image_inputs:  # native: the processed sizes; anyres: the original ones
            return [self.num_image_tokens(int(h), int(w)) for h, w in image_inputs["image_sizes"]]
        pixel_values = image_inputs["pixel_values"]
        return [self.num_image_tokens(*pixel_values.shape[-2:])] * pixel_values.shape[0]

    # --- main entry point ---------------------------------------------------------------------------------
    def __call__(
        self,
        images: ImageSource | Sequence[ImageSource] | Sequence[Sequence[ImageSource]] | None = None,
        text: str | Sequence[str] | None = None,
        *,
        padding: bool = True,
        padding_side: str | None = "left",
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Tokenize prompts with `<image>` placeholders and preprocess their images.

        `images` is flat (in placeholder order across the batch) or one list per prompt. Returns
        `input_ids`, `attention_mask`, and `pixel_values` (+ `image_sizes` in native and anyres modes) when images
        are given.
        """
        if text is None:
            raise ValueError("ConvLlavaProcessor needs text (use '<image>' where each image goes)")
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        prompts = [text] if isinstance(text, str) else list(text)
        flat_images = _flatten_images(images)
        expected = sum(p.count(self.image_token) for p in prompts)
        if expected != len(flat_images):
            raise ValueError(
                f"the text has {expected} {self.image_token} placeholder(s) but {len(flat_images)} image(s) were "
                f"given; pass exactly one image per {self.image_token}"
            )
        image_inputs: dict[str, Any] = {}
        tokens_per_image: list[int] = []
        if flat_images:
            image_inputs = dict(self.image_processor(flat_images, return_tensors="pt"))
            tokens_per_image = self._tokens_per_image(image_inputs)
        sequences, cursor = [], 0
        for prompt in prompts:
            n = prompt.count(self.image_token)
            ids, _ = encode_with_images(
                self.tokenizer, prompt, self.image_token, self.image_token_id, tokens_per_image[cursor : cursor + n]
            )
            sequences.append(ids)
            cursor += n
        batch = self.pad(sequences, padding=padding, padding_side=padding_side)
        return BatchFeature(data={**batch, **image_inputs}, tensor_type=return_tensors)

    def pad(
        self,
        sequences: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]] | None = None,
        padding: bool = True,
        padding_side: str | None = "left",
    ) -> dict[str, list[list[int]]]:
        """Pad id lists (and label lists, with IGNORE_INDEX) to the longest; pad id = tokenizer.pad_token_id."""
        side = padding_side or self.tokenizer.padding_side
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        lengths = {len(s) for s in sequences}
        if not padding and len(lengths) > 1:
            raise ValueError("prompts have different lengths; pass padding=True to pad them")
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(lengths, default=0)
        out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": []}
        if labels is not None:
            out["labels"] = []
        for i, seq in enumerate(sequences):
            fill = width - len(seq)
            parts = {"input_ids": (list(seq), pad_id), "attention_mask": ([1] * len(seq), 0)}
            if labels is not None:
                parts["labels"] = (list(labels[i]), IGNORE_INDEX)
            for key, (values, pad_value) in parts.items():
                out[key].append([pad_value] * fill + values if side == "left" else values + [pad_value] * fill)
        return out

    # --- conversations ------------------------------------------------------------------------------------
    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> RenderedPrompt:
        return get_template(self.template).render(
            messages, add_generation_prompt=add_generation_prompt, tokenizer=self.tokenizer
        )

    def apply_chat_template(
        self, conversation: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True, **_: Any
    ) -> str:
        """Messages -> prompt string with the processor's template (for `processor(text=...)`)."""
        return self.render(conversation, add_generation_prompt).text

    def build_training_example(
        self,
        messages: Sequence[Mapping[str, Any]],
        images: Sequence[ImageSource] = (),
        image_token_counts: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """One conversation -> `input_ids` and `labels` (only assistant answers and their end token are trained)
        and `pixel_values` / `image_sizes` for its images, all unpadded tensors. `image_token_counts` instead of
        `images`: the visual tokens of images the caller brings as precomputed features (no pixels are made)."""
        if images and image_token_counts is not None:
            raise ValueError("pass images or image_token_counts (for precomputed features), not both")
        rendered = self.render(messages)
        image_inputs = dict(self.image_processor(list(images), return_tensors="pt")) if images else {}
        tokens_per_image = self._tokens_per_image(image_inputs) if images else list(image_token_counts or [])
        ids, labels = encode_with_images(
            self.tokenizer,
            rendered.text,
            self.image_token,
            self.image_token_id,
            tokens_per_image,
            rendered.trained_spans,
        )
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), **image_inputs}

    def count_prompt_tokens(self, messages: Sequence[Mapping[str, Any]], images: Sequence[Any] = ()) -> int:
        """Prompt length in tokens (text + visual) for a generation request, without processing the images: the
        ids are built as `__call__` builds them, with each image's token count taken from its size."""
        prompt = self.apply_chat_template(messages, add_generation_prompt=True)
        if self.image_processor.resize_mode == "anyres":  # counted from the original size
            sizes = [(image.height, image.width) for image in images]
        else:
            sizes = [self.image_processor.output_size(*image.size) for image in images]
        counts = [self.num_image_tokens(h, w) for h, w in sizes]
        ids, _ = encode_with_images(self.tokenizer, prompt, self.image_token, self.image_token_id, counts)
        return len(ids)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_sizes"]


def _flatten_images(images: Any) -> list[ImageSource]:
    if images is None:
        return []
    if not isinstance(images, (list, tuple)):
        return [images]
    flat: list[ImageSource] = []
    for item in images:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    return flat
