"""helpers.py

Small test helpers shared by several test modules (kept out of conftest so they can be imported).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
