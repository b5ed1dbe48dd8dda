"""records.py

The LLaVA conversation format: reading records from JSON / JSONL files or a Hugging Face `datasets`
source, and checking one record's shape.

A record is `{"id": ..., "image": "a.jpg" | ["a.jpg", "b.jpg"] (optional), "conversations":
[{"from": "human" | "gpt", "value": "..."}, ...]}` with `<image>` placeholders in the human turns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..constants import DEFAULT_IMAGE_TOKEN


class RecordError(ValueError):
    """A record cannot be used; `reason` is the short key it is counted under in the skip report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_records(source: str | Path) -> list[dict[str, Any]]:
    """Records from a `.json` (a list), a `.jsonl` file, or a `datasets` folder saved with `save_to_disk`."""
    path = Path(source)
    if path.is_dir():
        try:
            import datasets
        except ImportError as err:
            raise ValueError(
                f"{path} is a folder; reading a Hugging Face dataset needs `pip install datasets`"
            ) from err
        return [dict(row) for row in datasets.load_from_disk(str(path))]
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    if path.suffix == ".jsonl":
        records = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        records.append({"__invalid__": f"line {number}: {err}"})
        return records
    with path.open(encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); use a JSON list or JSON lines (.jsonl)") from None
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of records, got {type(data).__name__}")
    return data


def record_images(record: Mapping[str, Any]) -> list[str]:
    """The record's image paths as a list (empty for text-only records)."""
    image = record.get("image")
    if image is None or image == "":
        return []
    if isinstance(image, str):
        return [image]
    if isinstance(image, Sequence) and all(isinstance(i, str) for i in image):
        return list(image)
    raise RecordError("malformed_record", f"'image' must be a path or a list of paths, got {image!r}")


def check_record(record: Any) -> tuple[list[dict[str, str]], list[str]]:
    """Return (turns, image paths) or raise `RecordError` with a reason key."""
    if not isinstance(record, Mapping):
        raise RecordError("malformed_record", f"a record must be an object, got {type(record).__name__}")
    if "__invalid__" in record:
        raise RecordError("malformed_record", f"unparseable JSON ({record['__invalid__']})")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError("malformed_record", "'conversations' must be a non-empty list")
    if not all(isinstance(t, Mapping) and isinstance(t.get("value"), str) for t in turns):
        raise RecordError("malformed_record", "every turn needs a string 'value'")
    images = record_images(record)
    placeholders = sum(str(t["value"]).count(DEFAULT_IMAGE_TOKEN) for t in turns)
    if placeholders != len(images):
        raise RecordError(
            "image_placeholder_mismatch",
            f"{placeholders} {DEFAULT_IMAGE_TOKEN} placeholder(s) for {len(images)} image(s)",
        )
    return [dict(t) for t in turns], images


def move_images_to_front(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The original `preprocess_multimodal`: a turn's `<image>` placeholders go to its start, one per line."""
    result = []
    for turn in turns:
        value = turn["value"]
        count = value.count(DEFAULT_IMAGE_TOKEN)
        if count:
            value = (DEFAULT_IMAGE_TOKEN + "\n") * count + value.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        result.append({**turn, "value": value})
    return result
