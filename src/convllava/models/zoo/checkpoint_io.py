"""checkpoint_io.py

Reading and writing raw state dicts in the layouts published checkpoints use: one `.bin` or
`.safetensors` file, or shards with an `*.index.json`. `.bin` files are read with
`torch.load(weights_only=True)`, so a checkpoint can never run code. Errors name the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

#: Single-file and index names, in the order they are looked for.
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES: tuple[str, ...] = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A checkpoint folder is missing a file, or holds a key that does not fit; the message names it."""


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that needs code (refused by weights_only)
        raise CheckpointError(f"cannot read checkpoint file {str(path)!r}: {err}") from None


def read_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (single file or sharded with an index)."""
    folder = Path(folder)
    for index_name in INDEX_FILES:
        index_path = folder / index_name
        if index_path.is_file():
            weight_map = json.loads(index_path.read_text())["weight_map"]
            state: dict[str, torch.Tensor] = {}
            for shard in dict.fromkeys(weight_map.values()):
                state.update(_read_file(folder / shard))
            missing = sorted(k for k in weight_map if k not in state)
            if missing:
                raise CheckpointError(f"{index_path} lists {missing[0]!r} but no shard holds it")
            return state
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return _read_file(folder / name)
    raise CheckpointError(f"no weights in {str(folder)!r}: expected one of {WEIGHT_FILES + INDEX_FILES}")


def write_state_dict(
    state: dict[str, torch.Tensor], folder: str | Path, fmt: str = "safetensors", name: str | None = None
) -> Path:
    """Write one weights file atomically (temporary name, then rename); `name` defaults to transformers' own."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
    target = folder / name
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    tensors = {k: v.contiguous() for k, v in state.items()}
    if fmt == "safetensors":
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    else:
        torch.save(tensors, str(tmp))
    os.replace(tmp, target)
    return target
