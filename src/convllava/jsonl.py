"""jsonl.py

Reading JSON-lines files with errors that name the file and line: benchmark files, batch-generation inputs and
the evaluation runner's own predictions. (Training records are read in data/records.py, which keeps a bad line
as a record to skip and report rather than stopping.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; a line that is not JSON raises ValueError naming it."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number} is not valid JSON ({err})") from None
