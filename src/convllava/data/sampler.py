"""sampler.py

`ModalityLengthGroupedSampler`: LLaVA's `--group_by_modality_length`. Multimodal and text-only samples
are shuffled separately, cut into mega-batches of `world_size * batch_size` sorted by length (so the
samples of one step have similar lengths and one modality), and the mega-batches are shuffled. Seeded
by (seed, epoch): every process computes the same order, and a resumed run sees the same order.

`batches_per_group > 1` sorts that many global batches together before cutting them into batches: on one
process LLaVA's grouping sorts within a batch only, which leaves the padding as it was; sorting several batches
at once gives each batch samples of similar length (the demo's stage 3, 16 batches at a time: padded tokens
1.29 -> 1.05 times the real ones). The price: where length follows the kind of sample, a batch holds one kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    """`lengths[i] > 0` for samples with images, `< 0` for text-only ones (magnitude = length)."""

    def __init__(self, lengths: Sequence[int], mega_batch_size: int, seed: int = 0, batches_per_group: int = 1) -> None:
        if mega_batch_size <= 0:
            raise ValueError(f"mega_batch_size must be positive, got {mega_batch_size}")
        if batches_per_group <= 0:
            raise ValueError(f"batches_per_group must be positive, got {batches_per_group}")
        self.lengths = list(lengths)
        self.mega_batch_size = mega_batch_size
        self.batches_per_group = batches_per_group
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
            span = self.mega_batch_size * self.batches_per_group
            for start in range(0, len(order), span):
                mega = sorted(order[start : start + span], key=lambda i: -abs(self.lengths[i]))
                groups += [mega[k : k + self.mega_batch_size] for k in range(0, len(mega), self.mega_batch_size)]
        for g in torch.randperm(len(groups), generator=generator).tolist():
            yield from groups[g]
