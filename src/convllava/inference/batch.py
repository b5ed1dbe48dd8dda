"""batch.py

`generate_file`: answer a JSONL file of questions in batches, appending each answer to the output as it
goes, and skip ids already answered, so an interrupted job resumes where it stopped.

Input rows: `{"id": ..., "question": "..." | "messages": [...], "image": path | [paths] (optional)}`.
Output rows: `{"id": ..., "answer": "..."}`, or `{"id": ..., "error": "..."}` for a row that cannot be
answered (a bad image, a malformed row); error rows are not retried on resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..jsonl import iter_jsonl
from ..processing import ImageLoadError, TemplateError
from .pipeline import ConvLlavaPipeline, Request, as_request


def answered_ids(output: Path) -> set[str]:
    """Ids in an existing output file; a torn last line (from a kill mid-write) is cut off."""
    if not output.is_file():
        return set()
    lines = output.read_text(encoding="utf-8").splitlines(keepends=True)
    ids, keep = set(), 0
    for line in lines:
        try:
            ids.add(str(json.loads(line)["id"]))
            keep += len(line.encode("utf-8"))
        except (json.JSONDecodeError, KeyError, TypeError):
            break
    with output.open("r+b") as handle:
        handle.truncate(keep)
    return ids


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    for number, row in iter_jsonl(path):
        if "id" not in row:
            raise ValueError(f"{path}:{number} has no 'id'; every question needs one (answers are matched by id)")
        yield row


def _to_request(row: dict[str, Any], image_folder: Path | None) -> Request:
    images = row.get("image") or []
    images = [images] if isinstance(images, str) else list(images)
    if image_folder is not None:
        images = [str(image_folder / p) if not Path(p).is_absolute() else p for p in images]
    if "messages" in row:
        return Request(row["messages"], images)
    if "question" not in row:
        raise TemplateError("row needs 'question' or 'messages'")
    return as_request(str(row["question"]), images)


def generate_file(
    pipeline: ConvLlavaPipeline,
    input_path: str | Path,
    output_path: str | Path,
    batch_size: int = 8,
    image_folder: str | Path | None = None,
    **generation: Any,
) -> dict[str, int]:
    """Answer every unanswered row; returns counts {"answered", "errors", "skipped_already_done"}."""
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    input_path, output_path = Path(input_path), Path(output_path)
    folder = Path(image_folder) if image_folder is not None else None
    done = answered_ids(output_path)
    rows = list(_rows(input_path))
    todo = [r for r in rows if str(r["id"]) not in done]
    counts = {"answered": 0, "errors": 0, "skipped_already_done": len(rows) - len(todo)}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("a", encoding="utf-8") as out, tqdm(total=len(todo), desc="generate", unit="q") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for result in _answer(pipeline, batch, folder, generation):
                counts["errors" if "error" in result else "answered"] += 1
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(batch))
    return counts


def _answer(
    pipeline: ConvLlavaPipeline, batch: list[dict[str, Any]], folder: Path | None, generation: dict
) -> list[dict]:
    try:
        answers = pipeline.generate([_to_request(r, folder) for r in batch], **generation)
        return [{"id": r["id"], "answer": a} for r, a in zip(batch, answers, strict=True)]
    except (ImageLoadError, TemplateError, ValueError) as err:
        if len(batch) == 1:
            return [{"id": batch[0]["id"], "error": " ".join(str(err).split())}]
        # one bad row must not cost the batch: answer the rows one by one
        return [item for row in batch for item in _answer(pipeline, [row], folder, generation)]
