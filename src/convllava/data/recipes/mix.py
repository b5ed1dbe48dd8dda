"""mix.py

What a recipe stage trains on: each dataset's records (its `.filtered.json` when `check --write-filtered`
wrote one), sampled with LLaVA-NeXT's strategies (`all`, `first:N`, `first:P%`, `end:N`, `end:P%`,
`random:N`, `random:P%`; `P%` -> ceil(P * len / 100); `random` with the entry's seed), with image paths made
relative to the data root so one `--image-folder` serves every dataset. Also the exporters to LLaVA-NeXT's
YAML and InternVL's meta JSON.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import yaml

from .check import read_annotation
from .schema import Recipe, StageEntry, parse_stage_spec


def sample(records: list[Any], strategy: str, seed: int = 0) -> list[Any]:
    if strategy == "all":
        return list(records)
    how, _, amount = strategy.partition(":")
    if how not in ("first", "end", "random") or not amount:
        raise ValueError(f"sampling {strategy!r}: use all, first:N, first:P%, end:N, end:P%, random:N or random:P%")
    n = math.ceil(float(amount[:-1]) * len(records) / 100) if amount.endswith("%") else int(amount)
    n = min(n, len(records))
    if how == "first":
        return records[:n]
    if how == "end":
        return records[len(records) - n :]
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:n]


def _annotation(root: Path, annotation: str) -> Path:
    filtered = root / (annotation + ".filtered.json")
    return filtered if filtered.is_file() else root / annotation


def entry_records(recipe: Recipe, entry: StageEntry, root: Path) -> list[dict[str, Any]]:
    dataset = recipe.datasets[entry.dataset]
    records = sample(read_annotation(_annotation(root, dataset.annotation)), entry.sampling, entry.seed)
    prefix = Path(dataset.image_root)
    out = []
    for record in records:
        if record.get("image") and str(prefix) != ".":
            record = {**record, "image": str(prefix / record["image"])}
        out.append(record)
    return out


def stage_records(spec: str, root: str | Path) -> list[dict[str, Any]]:
    """`recipes/convllava.yaml:stage1[@variant]` -> the stage's records, image paths relative to `root`."""
    from .schema import load_recipe

    path, stage, variant = parse_stage_spec(spec)
    recipe = load_recipe(path)
    return [r for e in recipe.stage(stage, variant) for r in entry_records(recipe, e, Path(root))]


def export_llava_next(recipe: Recipe, stage: str, root: str | Path, variant: str | None = None) -> str:
    """LLaVA-NeXT's `--data_path` YAML. It has one image folder for all datasets, so every dataset's
    `image_root` must be the data root (else use `convllava train --data RECIPE:STAGE`, which rewrites paths)."""
    items = []
    for entry in recipe.stage(stage, variant):
        dataset = recipe.datasets[entry.dataset]
        if dataset.image_root not in (".", ""):
            raise ValueError(f"dataset {dataset.id} has image_root {dataset.image_root!r}; LLaVA-NeXT YAML takes "
                             "one --image_folder for all datasets")  # fmt: skip
        items.append({"json_path": str(_annotation(Path(root), dataset.annotation)),
                      "sampling_strategy": entry.sampling})  # fmt: skip
    return yaml.safe_dump({"datasets": items}, sort_keys=False)


def export_internvl(recipe: Recipe, stage: str, root: str | Path, variant: str | None = None) -> str:
    """InternVL's meta JSON: per dataset its image root, annotation, repeat and length."""
    meta = {}
    for entry in recipe.stage(stage, variant):
        dataset = recipe.datasets[entry.dataset]
        meta[dataset.id] = {"root": str(Path(root) / dataset.image_root),
                            "annotation": str(_annotation(Path(root), dataset.annotation)), "data_augment": False,
                            "repeat_time": 1, "length": dataset.records}  # fmt: skip
    return json.dumps(meta, indent=2)
