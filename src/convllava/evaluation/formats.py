"""formats.py

Readers for the local benchmark formats the evaluation runner accepts, all returning plain dict rows:
- lmms-eval's Hugging Face datasets: a parquet file, a folder of parquet files (as the Hub snapshot lays them
  out), or a `save_to_disk` folder; image columns arrive as `{"bytes", "path"}` or PIL images;
- VLMEvalKit TSV: base64 images in an `image` column (a short value there names another row's `index`
  whose image it shares, as VLMEvalKit writes duplicates);
- LLaVA eval JSONL / JSON: `image` paths relative to `--image-folder`.
`load_doc_image` turns any of those image values into a PIL image.
"""

from __future__ import annotations

import base64
import csv
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from ..jsonl import iter_jsonl
from ..processing.image_io import load_image, load_image_bytes

ID_FIELDS = ("question_id", "questionId", "index", "id", "qid")


def doc_id(doc: dict[str, Any], position: int) -> str:
    """A row's id: the first id-like field, else its position."""
    for key in ID_FIELDS:
        if doc.get(key) is not None:
            return str(doc[key])
    return str(position)


def load_doc_image(value: Any, image_folder: str | Path | None = None) -> Image.Image:
    """PIL image from a dataset value: PIL, bytes, `{"bytes", "path"}`, or a path (relative to `image_folder`)."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        if value.get("bytes"):
            return load_image_bytes(value["bytes"], name=str(value.get("path") or "<image bytes>"))
        value = value.get("path")
    if isinstance(value, bytes | bytearray):
        return load_image_bytes(bytes(value))
    if isinstance(value, str) and value:
        path = Path(value)
        if image_folder is not None and not path.is_absolute():
            path = Path(image_folder) / path
        return load_image(path)
    raise ValueError(f"no usable image in this row (got {type(value).__name__}); pass --image-folder for paths")


def _read_parquet(files: list[Path]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for file in files:
        rows.extend(pq.read_table(file).to_pylist())
    return rows


def _read_saved_dataset(folder: Path, split: str | None) -> list[dict[str, Any]]:
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(folder))
    if isinstance(data, DatasetDict):
        if split is None:
            if len(data) != 1:
                raise ValueError(f"{folder} holds splits {sorted(data)}; choose one with --split")
            split = next(iter(data))
        if split not in data:
            raise ValueError(f"{folder} has no split {split!r}; it has {sorted(data)}")
        data = data[split]
    return list(data)


def _read_tsv(path: Path) -> list[dict[str, Any]]:
    csv.field_size_limit(sys.maxsize)  # base64 images exceed the default 128 KiB field limit
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [dict(r) for r in csv.DictReader(handle, delimiter="\t")]
    if rows and "image" in rows[0]:
        by_index = {r.get("index"): r["image"] for r in rows if len(r.get("image") or "") > 64}
        for row in rows:
            value = row.get("image") or ""
            if len(value) <= 64 and value in by_index:  # a reference to another row's image
                value = by_index[value]
            row["image"] = base64.b64decode(value) if value else None
    return rows


def _read_json(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):  # {id: row} files, as MM-Vet ships
            data = [{"question_id": k, **v} for k, v in data.items()]
        return list(data)
    return [row for _, row in iter_jsonl(path)]


def read_benchmark(path: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """All rows of a benchmark file or folder, in file order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark data {path} does not exist")
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return _read_saved_dataset(path, split)
        files = sorted(path.rglob("*.parquet"))
        if split is not None:
            files = [f for f in files if f.name.startswith(f"{split}-") or f.parent.name == split]
        if not files:
            raise ValueError(f"{path} holds no parquet files{f' for split {split!r}' if split else ''}")
        return _read_parquet(files)
    readers = {".parquet": lambda p: _read_parquet([p]), ".tsv": _read_tsv, ".jsonl": _read_json, ".json": _read_json}
    if path.suffix not in readers:
        raise ValueError(f"{path}: unknown benchmark format; use .parquet, .tsv, .jsonl / .json or a dataset folder")
    return readers[path.suffix](path)
