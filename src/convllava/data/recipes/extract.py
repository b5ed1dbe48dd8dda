"""extract.py

Placing a fetched file under the data root: plain files are copied to `dest`; zip and tar archives are
extracted with the source's rules (`members` glob, `strip_prefix`, `junk_paths`, `into`) through a temporary
folder and moved into place file by file, so an interrupted extraction never leaves a truncated file under a
final name. Fix-ups run afterwards: `ocr_vqa_to_jpg` (GIF / PNG bytes under `.jpg` names become real JPEGs)
and `symlink` (e.g. ALLaVA-VFLAN's image folder pointing at Vision-Flan's).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image

from .schema import Extract, SourceFile


def _target(member: str, rule: Extract) -> str | None:
    if member.endswith("/") or not fnmatch.fnmatch(PurePosixPath(member).name, rule.members):
        return None
    if rule.strip_prefix:
        if not member.startswith(rule.strip_prefix):
            return None
        member = member[len(rule.strip_prefix) :]
    if rule.junk_paths:
        member = PurePosixPath(member).name
    parts = PurePosixPath(member).parts
    if any(p == ".." for p in parts) or PurePosixPath(member).is_absolute():
        raise ValueError(f"archive member {member!r} escapes the extraction folder")
    return member


def place(archive: Path, spec: SourceFile, root: Path) -> int:
    """Copy or extract one fetched file under `root`; returns the number of files placed."""
    if spec.extract is None:
        dest = root / spec.dest / archive.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(archive, tmp)
        tmp.replace(dest)
        return 1
    rule = spec.extract
    into = root / rule.into
    into.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        if rule.type == "zip":
            with zipfile.ZipFile(archive) as handle:
                for info in handle.infolist():
                    target = _target(info.filename, rule)
                    if target is not None:
                        staged = Path(tmp) / f"{count}"
                        with handle.open(info) as src, staged.open("wb") as out:
                            shutil.copyfileobj(src, out)
                        _move(staged, into / target)
                        count += 1
        else:
            with tarfile.open(archive) as handle:
                for info in handle:
                    target = _target(info.name, rule) if info.isfile() else None
                    if target is not None:
                        staged = Path(tmp) / f"{count}"
                        with handle.extractfile(info) as src, staged.open("wb") as out:  # type: ignore[union-attr]
                            shutil.copyfileobj(src, out)
                        _move(staged, into / target)
                        count += 1
    return count


def _move(staged: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)


def ocr_vqa_to_jpg(folder: Path) -> int:
    """Re-encode `.jpg` files whose bytes are GIF or PNG (OCR-VQA's downloads) as RGB JPEG (first frame)."""
    fixed = 0
    for path in sorted(folder.rglob("*.jpg")):
        with path.open("rb") as handle:
            head = handle.read(8)
        if head.startswith(b"GIF8") or head.startswith(b"\x89PNG"):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            tmp = path.with_name(f".{path.name}.tmp")
            rgb.save(tmp, format="JPEG", quality=95)
            tmp.replace(path)
            fixed += 1
    return fixed


def apply_post(steps: tuple[dict, ...], root: Path) -> dict[str, int]:
    """Run a source's fix-ups; returns what each did."""
    done: dict[str, int] = {}
    for step in steps:
        if "symlink" in step:
            link = root / step["symlink"]
            if not link.is_symlink() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(step["target"], target_is_directory=True)
                done["symlink"] = done.get("symlink", 0) + 1
        elif step.get("fix") == "ocr_vqa_to_jpg":
            done["ocr_vqa_to_jpg"] = ocr_vqa_to_jpg(root / step["dir"])
        else:
            raise ValueError(f"unknown post step {step}; known: symlink, fix: ocr_vqa_to_jpg")
    return done
