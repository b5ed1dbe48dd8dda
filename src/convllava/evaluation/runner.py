"""runner.py

`evaluate`: run one benchmark end to end. Rows are answered in batches with the task's prompt; each answer is
appended to `predictions.jsonl` with what scoring needs, so an interrupted run resumes where it stopped and a
finished one can be re-scored under another protocol without the model (`score_predictions`). Judge grades
are cached the same way in `judgements.jsonl`. `results.json` and `results.md` are written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from ..inference.batch import answered_ids
from ..inference.pipeline import ConvLlavaPipeline, as_request
from ..jsonl import iter_jsonl
from ..processing import ImageLoadError, TemplateError
from .formats import doc_id, read_benchmark
from .judge import Judge
from .tasks import Task, get_task, headline

logger = logging.getLogger(__name__)
PROTOCOLS = ("lmms-eval", "vlmevalkit", "llava")


def _append(handle, row: dict[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {str(r["id"]): r for _, r in iter_jsonl(path) if r}


def _prepare(task: Task, doc: dict[str, Any], image_folder: Any, options: dict[str, Any]) -> tuple[str, list, dict]:
    images = task.images(doc, image_folder)
    if task.prepare is not None:
        doc = {**doc, **task.prepare(doc, images, options)}
    return task.prompt(doc), images, task.target(doc)


def _answer_batch(pipeline: ConvLlavaPipeline, task: Task, batch: list[tuple[str, dict]], image_folder: Any,
                  options: dict[str, Any], generation: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    ready: list[tuple[int, Any]] = []
    for rid, doc in batch:
        try:
            prompt, images, target = _prepare(task, doc, image_folder, options)
            ready.append((len(rows), as_request(prompt, images)))
            rows.append({"id": rid, "prediction": None, "target": target})
        except (ImageLoadError, ValueError, KeyError, TemplateError) as err:
            rows.append({"id": rid, "prediction": "", "error": " ".join(str(err).split()), "target": None})
    if ready:
        answers = pipeline.generate([request for _, request in ready], **generation)
        for (position, _), answer in zip(ready, answers, strict=True):
            rows[position]["prediction"] = answer
    return rows


def score_predictions(task_name: str, rows: list[dict[str, Any]], protocol: str = "lmms-eval") -> dict[str, Any]:
    """Metrics for saved prediction rows (rows with an `error` have no target and are counted apart)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    usable = [r for r in rows if r.get("target") is not None]
    if not usable:
        raise ValueError(f"no scorable predictions for {task_name} ({len(rows)} rows, all errors)")
    return get_task(task_name).score(usable, protocol)


def evaluate(pipeline: ConvLlavaPipeline, task_name: str, data: str | Path, output: str | Path, *,
             protocol: str = "lmms-eval", limit: int | None = None, batch_size: int = 8,
             image_folder: str | Path | None = None, split: str | None = None, max_new_tokens: int | None = None,
             judge: Judge | None = None, box_frame: str = "original", model_name: str = "") -> dict[str, Any]:  # fmt: skip
    """Answer, grade and score one benchmark; returns the results dict also written to `output/results.json`."""
    task = get_task(task_name)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    if task.judge_row is not None and judge is None:
        raise ValueError(f"{task_name} is graded by a judge model; pass --judge-model (and --judge-base-url)")
    if box_frame not in ("original", "padded"):
        raise ValueError(f"box frame must be 'original' or 'padded', not {box_frame!r}")
    docs = read_benchmark(data, split)
    docs = docs[:limit] if limit is not None else docs
    ids = [doc_id(d, i) for i, d in enumerate(docs)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{data}: row ids are not unique; predictions are matched by id")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pred_path = out / "predictions.jsonl"
    done = answered_ids(pred_path)
    todo = [(i, d) for i, d in zip(ids, docs, strict=True) if i not in done]
    generation = {"max_new_tokens": max_new_tokens or task.max_new_tokens, "do_sample": False}
    options = {"box_frame": box_frame}
    with pred_path.open("a", encoding="utf-8") as handle, tqdm(total=len(todo), desc=task_name, unit="q") as bar:
        for start in range(0, len(todo), batch_size):
            for row in _answer_batch(
                pipeline, task, todo[start : start + batch_size], image_folder, options, generation
            ):
                _append(handle, row)
            bar.update(len(todo[start : start + batch_size]))
    saved = _read_jsonl(pred_path)
    rows = [saved[i] for i in ids]
    if task.judge_row is not None:
        rows = _grade(task, rows, out / "judgements.jsonl", judge, protocol)
    errors = sum(1 for r in rows if r.get("error"))
    if errors:
        logger.warning(
            "%s: %d of %d rows could not be answered (see 'error' in %s)", task_name, errors, len(rows), pred_path
        )
    metrics = score_predictions(task_name, rows, protocol)
    results = {"task": task_name, "protocol": protocol, "model": model_name, "data": str(data), "samples": len(rows),
               "errors": errors, "metrics": metrics, "headline": {task.headline: headline(task_name, metrics)}}  # fmt: skip
    write_text_atomic(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "results.md", report([out]))
    return results


def saved_rows(folder: str | Path) -> list[dict[str, Any]]:
    """The prediction rows of a run folder, with their judge grades when there are any."""
    folder = Path(folder)
    rows = _read_jsonl(folder / "predictions.jsonl")
    for rid, grade in _read_jsonl(folder / "judgements.jsonl").items():
        if rid in rows:
            rows[rid]["judgement"] = grade["judgement"]
    return list(rows.values())


def _grade(task: Task, rows: list[dict], path: Path, judge: Judge, protocol: str) -> list[dict]:
    answered_ids(path)  # cuts a torn last line left by a kill mid-write
    graded = _read_jsonl(path)
    with path.open("a", encoding="utf-8") as handle:
        for row in tqdm([r for r in rows if r["id"] not in graded and r.get("target")], desc="judge", unit="q"):
            grade = task.judge_row(judge, row["target"], row["prediction"], protocol)
            graded[row["id"]] = {"id": row["id"], "judgement": grade}
            _append(handle, graded[row["id"]])
    return [{**r, "judgement": graded[r["id"]]["judgement"]} if r["id"] in graded else r for r in rows]


def report(dirs: list[str | Path]) -> str:
    """A markdown table of headline metrics: one row per task, one column per run folder."""
    runs = []
    for d in dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run `convllava eval` with --output {d} first")
        runs.append((Path(d).name or str(d), json.loads(path.read_text(encoding="utf-8"))))
    tasks = sorted({(r["task"], next(iter(r["headline"]))) for _, r in runs})
    lines = ["| task | metric | " + " | ".join(name for name, _ in runs) + " |", "|---|---|" + "---:|" * len(runs)]
    for task, metric in tasks:
        cells = []
        for _, r in runs:
            value = r["headline"].get(metric) if r["task"] == task else None
            cells.append("" if value is None else f"{value:.4f}" if value <= 1 else f"{value:.2f}")
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
