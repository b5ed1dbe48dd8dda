"""schema.py

The three recipe layers and their validation. A recipe YAML may `include` other YAML files (paths relative
to it) holding `sources` and `datasets`:
- source: where bytes come from -- `kind: hf` (repo, pinned revision, files) or `kind: url` (mirrors), with
  checksums, archive extraction rules (`into`, `strip_prefix`, `junk_paths`, `members`), licence and fix-ups;
- dataset: one annotation file = one trainable dataset (`annotation`, `image_root`, `requires`, expected
  record count, `on_missing_image: fail | drop`);
- recipe: `stages`, each a list of datasets with LLaVA-NeXT sampling (`all`, `first:N`, `first:P%`, `end:N`,
  `random:N`, `random:P%`, with a seed); a stage may `inherit` another and `add` datasets; `variants` swap
  dataset ids (e.g. a re-uploaded source) and are picked with `recipe.yaml:stage@variant`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SOURCE_KINDS = ("hf", "url", "manual")  # manual: licence-gated or Drive-only; the user places the file
ARCHIVES = ("zip", "tar")


class RecipeError(ValueError):
    """A recipe file that does not describe a valid mixture; the message names the file and the entry."""


@dataclass(frozen=True)
class Extract:
    type: str
    into: str = "."
    strip_prefix: str = ""
    junk_paths: bool = False
    members: str = "*"


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its remote path (hf) or URLs (url), where it lands, and how to check it."""

    name: str
    dest: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    bytes: int | None = None
    extract: Extract | None = None
    approx_bytes: int | None = None  # for planning when the exact size is not published


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    files: tuple[SourceFile, ...]
    repo_id: str | None = None
    revision: str | None = None
    licence: dict[str, Any] = field(default_factory=dict)
    post: tuple[dict[str, Any], ...] = ()
    instructions: str = ""  # manual sources: how to obtain the file


@dataclass(frozen=True)
class Dataset:
    id: str
    annotation: str
    image_root: str = "."
    requires: tuple[str, ...] = ()
    records: int | None = None
    on_missing_image: str = "fail"


@dataclass(frozen=True)
class StageEntry:
    dataset: str
    sampling: str = "all"
    seed: int = 0


@dataclass
class Recipe:
    name: str
    path: Path
    sources: dict[str, Source]
    datasets: dict[str, Dataset]
    stages: dict[str, list[StageEntry]]
    expect_total: dict[str, int]
    variants: dict[str, dict[str, str]]

    def stage(self, name: str, variant: str | None = None) -> list[StageEntry]:
        if name not in self.stages:
            raise RecipeError(f"{self.path}: no stage {name!r}; stages are {', '.join(self.stages)}")
        if variant is not None and variant not in self.variants:
            raise RecipeError(f"{self.path}: no variant {variant!r}; variants are {', '.join(self.variants) or 'none'}")
        swap = self.variants.get(variant or "", {})
        return [StageEntry(swap.get(e.dataset, e.dataset), e.sampling, e.seed) for e in self.stages[name]]

    def sources_for(self, entries: list[StageEntry]) -> list[Source]:
        needed = dict.fromkeys(s for e in entries for s in self.datasets[e.dataset].requires)
        return [self.sources[s] for s in needed]


def _need(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise RecipeError(f"{where}: missing '{key}'")
    return entry[key]


def _source(entry: dict[str, Any], where: str) -> Source:
    sid = _need(entry, "id", where)
    where = f"{where} source {sid!r}"
    kind = _need(entry, "kind", where)
    if kind not in SOURCE_KINDS:
        raise RecipeError(f"{where}: kind must be one of {SOURCE_KINDS}, not {kind!r}")
    if kind == "hf" and not entry.get("revision"):
        raise RecipeError(f"{where}: an hf source needs a pinned 'revision' (a commit sha)")
    files = []
    for f in _need(entry, "files", where):
        name = f.get("path") or f.get("name")
        if not name:
            raise RecipeError(f"{where}: every file needs 'path' (hf) or 'name' (url)")
        if kind == "url" and not f.get("urls"):
            raise RecipeError(f"{where}: file {name!r} needs 'urls'")
        for algorithm in ("sha256", "md5"):
            if f.get(algorithm) is not None and not isinstance(f[algorithm], str):
                raise RecipeError(f"{where}: file {name!r} {algorithm} was read as a number; quote it")
        ext = f.get("extract")
        if ext is not None and ext.get("type") not in ARCHIVES:
            raise RecipeError(f"{where}: file {name!r} extract.type must be one of {ARCHIVES}")
        files.append(SourceFile(name=name, dest=f.get("dest", "."), urls=tuple(f.get("urls", ())),
                                sha256=f.get("sha256"), md5=f.get("md5"), bytes=f.get("bytes"),
                                extract=Extract(**ext) if ext else None,
                                approx_bytes=_size(f.get("approx_size"), where)))  # fmt: skip
    return Source(sid, kind, tuple(files), entry.get("repo_id"), entry.get("revision"), entry.get("licence", {}),
                  tuple(entry.get("post", ())), entry.get("instructions", ""))  # fmt: skip


def _size(text: str | None, where: str) -> int | None:
    """ "27.4 GB" -> bytes (decimal units, as the Hub shows sizes)."""
    if text is None:
        return None
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "GIB": 2**30, "MIB": 2**20}
    number, _, unit = str(text).strip().partition(" ")
    if unit.upper() not in units:
        raise RecipeError(f"{where}: approx_size {text!r} is not like '27.4 GB'")
    return int(float(number) * units[unit.upper()])


def _dataset(entry: dict[str, Any], where: str) -> Dataset:
    did = _need(entry, "id", where)
    policy = entry.get("on_missing_image", "fail")
    if policy not in ("fail", "drop"):
        raise RecipeError(f"{where} dataset {did!r}: on_missing_image must be 'fail' or 'drop'")
    expect = entry.get("expect") or {}
    return Dataset(did, _need(entry, "annotation", f"{where} dataset {did!r}"), entry.get("image_root", "."),
                   tuple(entry.get("requires", ())), expect.get("records"), policy)  # fmt: skip


def _read(path: Path, seen: set[Path]) -> dict[str, Any]:
    if path in seen:
        raise RecipeError(f"{path}: included twice (an include cycle?)")
    seen.add(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merged: dict[str, Any] = {"sources": [], "datasets": []}
    for inc in data.get("include", []):
        sub = _read(path.parent / inc, seen)
        merged["sources"] += sub["sources"]
        merged["datasets"] += sub["datasets"]
    merged["sources"] += data.get("sources", [])
    merged["datasets"] += data.get("datasets", [])
    return {**data, **merged}


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe (with its includes); every reference must resolve."""
    path = Path(path)
    data = _read(path, set())
    sources = {s.id: s for s in (_source(e, str(path)) for e in data["sources"])}
    datasets = {d.id: d for d in (_dataset(e, str(path)) for e in data["datasets"])}
    for d in datasets.values():
        for s in d.requires:
            if s not in sources:
                raise RecipeError(f"{path}: dataset {d.id!r} requires unknown source {s!r}")
    stages: dict[str, list[StageEntry]] = {}
    totals: dict[str, int] = {}
    for name, spec in (data.get("stages") or {}).items():
        entries = list(stages[spec["inherit"]]) if spec.get("inherit") else []
        if spec.get("inherit") and spec["inherit"] not in stages:
            raise RecipeError(f"{path}: stage {name!r} inherits unknown (or later) stage {spec['inherit']!r}")
        for item in (spec.get("datasets") or []) + (spec.get("add") or []):
            item = {"id": item} if isinstance(item, str) else item
            if item["id"] not in datasets:
                raise RecipeError(f"{path}: stage {name!r} lists unknown dataset {item['id']!r}")
            entries.append(StageEntry(item["id"], str(item.get("sampling", "all")), int(item.get("seed", 0))))
        stages[name] = entries
        if spec.get("expect_total") is not None:
            totals[name] = int(spec["expect_total"])
    variants = {k: dict(v.get("datasets", {})) for k, v in (data.get("variants") or {}).items()}
    for vname, swap in variants.items():
        for new in swap.values():
            if new not in datasets:
                raise RecipeError(f"{path}: variant {vname!r} swaps in unknown dataset {new!r}")
    return Recipe(data.get("recipe", path.stem), path, sources, datasets, stages, totals, variants)


def parse_stage_spec(spec: str) -> tuple[Path, str, str | None]:
    """`recipes/convllava.yaml:stage1[@current]` -> (path, stage, variant)."""
    if ":" not in spec:
        raise RecipeError(f"{spec!r}: name a stage, as in recipes/convllava.yaml:stage1")
    path, stage = spec.rsplit(":", 1)
    stage, _, variant = stage.partition("@")
    return Path(path), stage, variant or None
