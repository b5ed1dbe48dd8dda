"""fetch.py

Getting a source file onto disk, resumably and checked: plain HTTP(S) with `Range` requests into
`<name>.part` (mirrors tried in order), Hugging Face files through `huggingface_hub` at the pinned revision
(or, with `hub_root`, from a local folder laid out as `<hub_root>/<repo_id>/<path>`, as tests and air-gapped
mirrors use). The final name appears only after the checksum matches; a file already at the final name whose
checksum does not match is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .schema import Source, SourceFile

CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's bytes do not match the recipe's checksum."""


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: SourceFile) -> None:
    """Raise ChecksumError naming the file when its size or hash differs from the recipe."""
    if spec.bytes is not None and path.stat().st_size != spec.bytes:
        raise ChecksumError(f"{path}: {path.stat().st_size} bytes, the recipe expects {spec.bytes}")
    for algorithm in ("sha256", "md5"):
        expected = getattr(spec, algorithm)
        if expected and (actual := file_digest(path, algorithm)) != expected.lower():
            raise ChecksumError(f"{path}: {algorithm} {actual} does not match the recipe's {expected}")


def _http(url: str, part: Path, desc: str) -> None:
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416:  # the part file is already complete
            return
        raise
    with response:
        if done and response.status != 206:  # the server ignored Range: start over
            done = 0
        total = response.headers.get("Content-Length")
        total = int(total) + done if total else None
        with part.open("ab" if done else "wb") as out, tqdm(total=total, initial=done, unit="B", unit_scale=True,
                                                             desc=desc, leave=False) as bar:  # fmt: skip
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:  # the connection ended early: keep the part
        raise ConnectionError(f"{url}: got {part.stat().st_size} of {total} bytes; run prepare again to resume")


def _copy_resumable(src: Path, part: Path) -> None:
    done = part.stat().st_size if part.exists() else 0
    with src.open("rb") as handle, part.open("ab") as out:
        handle.seek(done)
        shutil.copyfileobj(handle, out, CHUNK)


def fetch(source: Source, spec: SourceFile, downloads: Path, hub_root: Path | None = None) -> Path:
    """The checked local copy of one source file (downloaded into `downloads` unless already there)."""
    final = downloads / source.id / Path(spec.name).name
    if final.exists():
        verify(final, spec)  # refuse, never overwrite, a file whose checksum is wrong
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    if source.kind == "manual":
        raise FileNotFoundError(f"{spec.name} of source {source.id} must be placed by hand at {final} "
                                f"({source.instructions or 'see the recipe'}); then re-run prepare")  # fmt: skip
    if source.kind == "url":
        errors = []
        for url in spec.urls:
            try:
                _http(url, part, f"{source.id}/{spec.name}")
                break
            except (urllib.error.URLError, OSError) as err:
                errors.append(f"{url}: {err}")
        else:
            raise OSError(f"could not download {spec.name} for source {source.id}: {'; '.join(errors)}")
    elif hub_root is not None:
        src = hub_root / str(source.repo_id) / spec.name
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found in the local hub mirror for {source.repo_id}@{source.revision}")
        _copy_resumable(src, part)
    else:
        from huggingface_hub import hf_hub_download

        cached = hf_hub_download(str(source.repo_id), spec.name, repo_type="dataset", revision=source.revision)
        _copy_resumable(Path(cached), part)
    try:
        verify(part, spec)
    except ChecksumError as err:
        part.unlink()  # a wrong download is discarded, so a retry starts clean
        raise ChecksumError(f"{spec.name} of source {source.id}: {err}") from None
    part.replace(final)
    return final
