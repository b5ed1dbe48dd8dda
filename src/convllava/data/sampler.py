"""sampler.py

`ModalityLengthGroupedSampler`: LLaVA's `--group_by_modality_length`. Multimodal and text-only samples
are shuffled separately, cut into mega-batches of `world_size * batch_size` sorted by length (so the
samples of one step have similar lengths and one modality), and the mega-batches are shuffled. Seeded
by (seed, epoch): every process computes the same order, and a resumed run sees the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    """`lengths[i] > 0` for samples with images, `< 0` for text-only ones (magnitude = length)."""

    def __init__(self, lengths: Sequence[int], mega_batch_size: int, seed: int = 0) -> None:
        if mega_batch_size <= 0:
            raise ValueError(f"mega_batch_size must be positive, got {mega_batch_size}")
        self.lengths = list(lengths)
        self.mega_batch_size = mega_batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        groups = []
        for keep in (lambda n: n > 0, lambda n: n <= 0):
            index = [i for i, n in enumerate(self.lengths) if keep(n)]
            order = [index[j] for j in torch.randperm(len(index), generator=generator).tolist()]
            for start in range(0, len(order), self.mega_batch_size):
                mega = order[start : start + self.mega_batch_size]
                groups.append(sorted(mega, key=lambda i: -abs(self.lengths[i])))
        for g in torch.randperm(len(groups), generator=generator).tolist():
            yield from groups[g]
