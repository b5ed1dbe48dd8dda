"""constants.py

Numbers and strings fixed by the original ConvLLaVA / LLaVA code that several sub-packages share.
"""

from __future__ import annotations

#: Label value ignored by the loss (PyTorch's cross-entropy default).
IGNORE_INDEX: int = -100

#: Placeholder the user writes in a prompt; the processor expands it to N image-token ids.
DEFAULT_IMAGE_TOKEN: str = "<image>"

#: CLIP normalisation used by every ConvLLaVA / LLaVA-1.5 checkpoint.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

#: Background of `expand2square` in the original code: tuple(int(x * 255) for x in CLIP_MEAN).
PAD_COLOR: tuple[int, int, int] = tuple(int(x * 255) for x in CLIP_MEAN)  # (122, 116, 104)
