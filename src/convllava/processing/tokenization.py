"""tokenization.py

Turn a prompt with `<image>` placeholders into input ids (and labels), the way the original
`tokenizer_image_token` does: the text is cut at each placeholder, every chunk is tokenized on its own
(only the first keeps the BOS token), and N image-token ids are put between the chunks. Labels come
from character spans (`RenderedPrompt.trained_spans`) through the tokenizer's offset mapping, so the
token ids are exactly those of the unmasked prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from ..constants import IGNORE_INDEX


def count_image_placeholders(text: str, image_token: str) -> int:
    return text.count(image_token)


def encode_with_images(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    image_token: str,
    image_token_id: int,
    tokens_per_image: Sequence[int],
    trained_spans: Sequence[tuple[int, int]] | None = None,
) -> tuple[list[int], list[int] | None]:
    """Return (input_ids, labels); labels is None when `trained_spans` is None.

    A token is trained when its characters lie inside one trained span; special tokens without characters
    (the BOS) and image tokens never are.
    """
    chunks = text.split(image_token)
    if len(chunks) - 1 != len(tokens_per_image):
        raise ValueError(
            f"the prompt has {len(chunks) - 1} {image_token} placeholder(s) but {len(tokens_per_image)} image(s) "
            "were given; pass one image per placeholder"
        )
    want_labels = trained_spans is not None
    input_ids: list[int] = []
    labels: list[int] = []
    offset = 0
    for index, chunk in enumerate(chunks):
        if chunk or index == 0:
            encoding = tokenizer(
                chunk,
                add_special_tokens=index == 0,
                return_offsets_mapping=want_labels,
                return_attention_mask=False,
            )
            ids = list(encoding["input_ids"])
            input_ids += ids
            if want_labels:
                for token_id, (start, end) in zip(ids, encoding["offset_mapping"], strict=True):
                    inside = end > start and _within(offset + start, offset + end, trained_spans)
                    labels.append(token_id if inside else IGNORE_INDEX)
        offset += len(chunk)
        if index < len(tokens_per_image):
            input_ids += [image_token_id] * tokens_per_image[index]
            labels += [IGNORE_INDEX] * tokens_per_image[index]
            offset += len(image_token)
    return input_ids, (labels if want_labels else None)


def _within(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(lo <= start and end <= hi for lo, hi in spans)
