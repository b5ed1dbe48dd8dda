"""check.py

`check`: the five verification levels for a recipe stage under a data root, with a report per dataset:
1. file hashes of every source file (against the recipe, or recorded on first use in the lock file);
2. annotation schema (LLaVA conversations: roles human/gpt alternating from human, one `<image>` per image
   record) and the expected record count;
3. every image path resolves under the dataset's image root;
4. with `decode`, every image decodes (PIL verify + full RGB load), in `workers` threads;
5. a lock file (`<stage>.lock.json`) with the sha256 digest of the final mix.
`write_filtered` writes `<annotation>.filtered.json` without the broken rows and says how many were dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from ...atomic import write_text_atomic
from ..records import load_records
from .fetch import ChecksumError, verify
from .schema import Recipe


def read_annotation(path: Path) -> list[dict[str, Any]]:
    """`load_records` (the training reader), with a hint when the file is not prepared yet."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation {path} does not exist; run `convllava data prepare` first")
    return load_records(path)


def schema_problem(record: Any) -> str | None:
    """Why a record is not a LLaVA conversation ConvLLaVA can train on, or None."""
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list) or not record["conversations"]:
        return "no conversations"
    turns = record["conversations"]
    roles = [t.get("from") if isinstance(t, dict) else None for t in turns]
    if any(r not in ("human", "gpt") for r in roles):
        return "roles other than human / gpt"
    if roles[0] != "human" or any(a == b for a, b in pairwise(roles)):
        return "roles do not alternate from human"
    placeholders = sum(str(t.get("value", "")).count("<image>") for t in turns)
    if placeholders != (1 if record.get("image") else 0):
        return f"{placeholders} <image> placeholders for {'one image' if record.get('image') else 'no image'}"
    return None


def _decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.convert("RGB").load()
        return True
    except Exception:  # any decoder failure means the trainer could not use the file
        return False


def check(recipe: Recipe, root: str | Path, stage: str, variant: str | None = None, decode: bool = False,
          workers: int = 4, write_filtered: bool = False) -> dict[str, Any]:  # fmt: skip
    root = Path(root)
    entries = recipe.stage(stage, variant)
    reports_dir = root / ".convllava" / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    lock_path = root / ".convllava" / f"{stage}.lock.json"
    previous = json.loads(lock_path.read_text()) if lock_path.is_file() else {}
    hashes, file_problems = dict(previous.get("files", {})), {}
    for source in recipe.sources_for(entries):  # level 1
        for spec in source.files:
            local = root / ".convllava" / "downloads" / source.id / Path(spec.name).name
            key = f"{source.id}/{spec.name}"
            if not local.is_file():
                file_problems[key] = "not downloaded"
                continue
            try:
                verify(local, spec)
            except ChecksumError as err:
                file_problems[key] = str(err)
                continue
            if not spec.sha256:  # trust on first use, then hold it to the recorded hash
                from .fetch import file_digest

                digest = file_digest(local)
                if key in hashes and hashes[key] != digest:
                    file_problems[key] = f"sha256 {digest} differs from the first-use record {hashes[key]}"
                hashes[key] = digest
    summary, mix = {}, hashlib.sha256()
    for entry in entries:
        dataset = recipe.datasets[entry.dataset]
        records = read_annotation(root / dataset.annotation)
        counts: Counter[str] = Counter()
        broken: set[int] = set()
        for i, record in enumerate(records):  # level 2
            if schema_problem(record) is not None:
                counts["bad_schema"] += 1
                broken.add(i)
        image_root = root / dataset.image_root
        with_images = [
            (i, image_root / r["image"]) for i, r in enumerate(records) if i not in broken and r.get("image")
        ]
        missing = {i for i, p in with_images if not p.is_file()}  # level 3
        counts["missing_image"] = len(missing)
        broken |= missing
        if decode:  # level 4
            todo = [(i, p) for i, p in with_images if i not in missing]
            with ThreadPoolExecutor(workers) as pool:
                results = list(tqdm(pool.map(lambda ip: _decodes(ip[1]), todo), total=len(todo),
                                    desc=f"decode {dataset.id}", unit="img"))  # fmt: skip
            bad = {i for (i, _), ok in zip(todo, results, strict=True) if not ok}
            counts["undecodable_image"] = len(bad)
            broken |= bad
        count_ok = dataset.records is None or dataset.records == len(records)
        report = {"dataset": dataset.id, "records": len(records), "expected_records": dataset.records,
                  "count_ok": count_ok, "broken": dict(counts), "usable": len(records) - len(broken),
                  "on_missing_image": dataset.on_missing_image, "broken_rows": sorted(broken)[:1000]}  # fmt: skip
        if write_filtered and broken:
            out = root / (dataset.annotation + ".filtered.json")
            write_text_atomic(out, json.dumps([r for i, r in enumerate(records) if i not in broken]))
            report["filtered"] = {"path": str(out), "dropped": len(broken)}
        (reports_dir / f"{dataset.id}.json").write_text(json.dumps(report, indent=2))
        summary[dataset.id] = report
        for i, r in enumerate(records):  # level 5: what the stage trains on, in order
            if i not in broken:
                mix.update(f"{dataset.id}\t{i}\t{r.get('image', '')}\n".encode())
    lock = {"stage": stage, "variant": variant, "mix_sha256": mix.hexdigest(), "files": hashes}
    lock_path.write_text(json.dumps(lock, indent=2))
    usable = [r["count_ok"] and (not any(r["broken"].values()) or (r["on_missing_image"] == "drop" and "filtered" in r))
              for r in summary.values()]  # fmt: skip
    ok = not file_problems and all(usable)
    return {"ok": ok, "files": file_problems, "datasets": summary, "lock": lock}
