"""dataset.py

`ConversationDataset`: LLaVA-format records -> training examples (input_ids, labels, pixel_values),
built lazily (images are read when a sample is fetched).

A bad record never stops an epoch: the sample at that index is replaced by the next good one, and the
returned example carries `skipped=[(reason, record id)]` so the trainer counts it once per epoch.
Reasons: malformed_record, bad_roles, image_placeholder_mismatch, image_missing, image_unreadable,
masking_failed (no token would be trained), too_long (the cut at max_length falls inside an image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..constants import IGNORE_INDEX
from ..processing import ConvLlavaProcessor, ImageLoadError, TemplateError
from .records import RecordError, check_record, move_images_to_front

#: Every reason a sample can be skipped for, in report order.
SKIP_REASONS: tuple[str, ...] = (
    "malformed_record",
    "bad_roles",
    "image_placeholder_mismatch",
    "image_missing",
    "image_unreadable",
    "masking_failed",
    "too_long",
)


class ConversationDataset(Dataset):
    """Map-style dataset over LLaVA conversation records."""

    def __init__(
        self,
        records: Sequence[Any],
        processor: ConvLlavaProcessor,
        image_folder: str | Path | None = None,
        max_length: int = 2048,
        move_image_to_front: bool = True,
        vision_features: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """`vision_features`: image path -> the frozen tower's output for it (training/feature_cache.py); the
        examples then carry `vision_features` instead of `pixel_values` and no image is read."""
        if not records:
            raise ValueError("the training data has no records")
        self.records = records
        self.processor = processor
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self.max_length = max_length
        self.move_image_to_front = move_image_to_front
        self.vision_features = vision_features
        size = processor.image_processor.size
        self._tokens_per_image = processor.num_image_tokens(size, size)

    def __len__(self) -> int:
        return len(self.records)

    def _path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() or self.image_folder is None else self.image_folder / path

    def build(self, index: int) -> dict[str, Any]:
        """The example for record `index`, or `RecordError`."""
        record = self.records[index]
        turns, images = check_record(record)
        if self.move_image_to_front:
            turns = move_images_to_front(turns)
        paths = [self._path(name) for name in images]
        for path in paths:
            if not path.is_file():
                raise RecordError("image_missing", f"image {str(path)!r} does not exist")
        if self.vision_features is not None:
            return self._truncate(self._cached_example(turns, paths))
        try:
            example = self.processor.build_training_example(turns, [str(p) for p in paths])
        except ImageLoadError as err:
            raise RecordError("image_unreadable", str(err)) from None
        except TemplateError as err:
            raise RecordError("bad_roles", str(err)) from None
        return self._truncate(example)

    def _cached_example(self, turns: list[dict[str, Any]], paths: list[Path]) -> dict[str, Any]:
        for path in paths:
            if self.vision_features.get(str(path)) is None:  # the cache leaves out what it could not read
                raise RecordError("image_unreadable", f"image {str(path)!r} could not be read for the feature cache")
        try:
            example = self.processor.build_training_example(
                turns, image_token_counts=[self._tokens_per_image] * len(paths)
            )
        except TemplateError as err:
            raise RecordError("bad_roles", str(err)) from None
        if paths:
            example["vision_features"] = torch.stack([self.vision_features[str(p)] for p in paths])
        return example

    def _truncate(self, example: dict[str, Any]) -> dict[str, Any]:
        ids, labels = example["input_ids"], example["labels"]
        if ids.numel() > self.max_length:
            image_positions = (ids == self.processor.image_token_id).nonzero()
            if image_positions.numel() and int(image_positions.max()) >= self.max_length:
                raise RecordError(
                    "too_long", f"{ids.numel()} tokens; the cut at {self.max_length} falls inside an image"
                )
            ids, labels = ids[: self.max_length], labels[: self.max_length]
            example = {**example, "input_ids": ids, "labels": labels}
        if not bool((labels != IGNORE_INDEX).any()):
            raise RecordError("masking_failed", "no assistant answer left to train on")
        return example

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        for offset in range(len(self.records)):
            current = (index + offset) % len(self.records)
            try:
                example = self.build(current)
            except RecordError as err:
                if offset == 0:  # count each bad index once per epoch: only where it was asked for
                    skipped.append((err.reason, str(_record_id(self.records[current], current))))
                continue
            example["skipped"] = skipped
            return example
        raise ValueError(
            "no record in the training data is usable (every one is malformed, lacks its image, or has nothing to train)"
        )

    def image_paths(self) -> list[Path]:
        """Every image the well-formed records name that exists on disk, each once, in record order."""
        paths: dict[Path, None] = {}
        for record in self.records:
            try:
                _, images = check_record(record)
            except RecordError:
                continue
            paths.update((p, None) for p in map(self._path, images) if p.is_file())
        return list(paths)

    def lengths(self) -> list[int]:
        """Estimated token length per record, negative for text-only ones (for the modality-grouped sampler)."""
        result = []
        for record in self.records:
            try:
                turns, images = check_record(record)
            except RecordError:
                result.append(1)
                continue
            words = sum(len(t["value"].split()) for t in turns)
            result.append(words + self._tokens_per_image * len(images) if images else -words)
        return result


def _record_id(record: Any, index: int) -> Any:
    return record.get("id", f"#{index}") if isinstance(record, dict) else f"#{index}"


def skip_summary(counts: dict[str, int]) -> dict[str, int]:
    """Counts for every known reason (zeros included) in report order, then any others."""
    ordered = {reason: int(counts.get(reason, 0)) for reason in SKIP_REASONS}
    ordered.update({k: int(v) for k, v in counts.items() if k not in ordered})
    return ordered
