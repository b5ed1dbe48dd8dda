"""zoo/

Published checkpoints: reading original ConvLLaVA / LLaVA folders (`original.py`), raw weight files
(`checkpoint_io.py`), and loading, converting and exporting them (`loading.py`).
"""

from __future__ import annotations

from .checkpoint_io import CheckpointError, read_state_dict, write_state_dict
from .loading import convert_checkpoint, export_checkpoint, load, load_original
from .original import convert_original, export_original, is_original_checkpoint

__all__ = [
    "CheckpointError",
    "convert_checkpoint",
    "convert_original",
    "export_checkpoint",
    "export_original",
    "is_original_checkpoint",
    "load",
    "load_original",
    "read_state_dict",
    "write_state_dict",
]
