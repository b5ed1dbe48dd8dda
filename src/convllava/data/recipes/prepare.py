"""prepare.py

`plan` (records per stage and the disk a stage needs, from the recipe alone) and `prepare` (fetch, check,
extract and fix every source a stage needs). Finished files are marked under `<root>/.convllava/prepared/`,
so a re-run after an interruption skips them and resumes a partial download where it stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .extract import apply_post, place
from .fetch import fetch
from .schema import Recipe, Source, StageEntry


def _entries(recipe: Recipe, stage: str | None, variant: str | None, only: str | None) -> list[StageEntry]:
    names = [stage] if stage else list(recipe.stages)
    entries = list(dict.fromkeys(e for n in names for e in recipe.stage(n, variant)))
    if only is not None:
        entries = [e for e in entries if e.dataset == only]
        if not entries:
            raise ValueError(f"dataset {only!r} is not in {'stage ' + stage if stage else 'the recipe'}")
    return entries


def _bytes(sources: list[Source]) -> int:
    return sum(f.bytes or f.approx_bytes or 0 for s in sources for f in s.files)


def plan(recipe: Recipe, variant: str | None = None) -> dict[str, Any]:
    """Per stage: datasets with expected records, the total against the recipe's `expect_total`, and disk."""
    stages = {}
    for name in recipe.stages:
        entries = recipe.stage(name, variant)
        records = {e.dataset: recipe.datasets[e.dataset].records for e in entries}
        total = sum(v or 0 for v in records.values())
        download = _bytes(recipe.sources_for(entries))
        stages[name] = {"datasets": records, "records": total, "expect_total": recipe.expect_total.get(name),
                        "download_bytes": download, "disk_bytes": 2 * download,  # archives + extracted files
                        "unknown_sizes": [f"{s.id}/{f.name}" for s in recipe.sources_for(entries) for f in s.files
                                          if f.bytes is None and f.approx_bytes is None]}  # fmt: skip
    return {"recipe": recipe.name, "variant": variant, "stages": stages}


def _marker(root: Path, source: Source, name: str) -> Path:
    return root / ".convllava" / "prepared" / source.id / (Path(name).name + ".done")


def prepare(recipe: Recipe, root: str | Path, stage: str | None = None, only: str | None = None,
            variant: str | None = None, hub_root: str | Path | None = None, keep_archives: bool = True,
            echo=print) -> dict[str, Any]:  # fmt: skip
    """Make every file the selected datasets need present and checked under `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = _entries(recipe, stage, variant, only)
    sources = recipe.sources_for(entries)
    pending = [(s, f) for s in sources for f in s.files if not _marker(root, s, f.name).exists()]
    need = sum(f.bytes or f.approx_bytes or 0 for _, f in pending)
    free = shutil.disk_usage(root).free
    echo(f"{len(pending)} of {sum(len(s.files) for s in sources)} files to prepare; about {need / 2**30:.2f} GiB to "
         f"download and as much again extracted; {free / 2**30:.1f} GiB free under {root}")  # fmt: skip
    for source in sources:
        if source.licence.get("gated") or source.licence.get("notice"):
            echo(f"licence of {source.id}: {source.licence.get('spdx', '')} {source.licence.get('notice', '')}".strip())
    downloads = root / ".convllava" / "downloads"
    placed: dict[str, int] = {}
    for source, spec in tqdm(pending, desc="prepare", unit="file"):
        local = fetch(source, spec, downloads, Path(hub_root) if hub_root else None)
        placed[f"{source.id}/{spec.name}"] = place(local, spec, root)
        if not keep_archives and spec.extract is not None:
            local.unlink()
        marker = _marker(root, source, spec.name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"files": placed[f"{source.id}/{spec.name}"]}))
    fixes = {s.id: apply_post(s.post, root) for s in sources if s.post}
    return {"placed": placed, "fixes": fixes, "datasets": [e.dataset for e in entries]}
