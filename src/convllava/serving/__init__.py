"""serving/

The OpenAI-compatible server: request parsing and limits (`protocol.py`), safe image fetching
(`images.py`), the batching worker (`batcher.py`), the FastAPI app (`app.py`) and its chat page.
"""

from __future__ import annotations

from .app import create_app
from .protocol import ServerLimits

__all__ = ["ServerLimits", "create_app"]
