"""helpers.py

Small test helpers shared by several test modules (kept out of conftest so they can be imported).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_conversation_data(folder, n: int = 8, seed: int = 0) -> tuple[str, str]:
    """Write n good LLaVA-format records (mixed image / text-only) and their images; return (jsonl, image dir)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    colors = ["red", "blue", "green"]
    records = []
    for i in range(n):
        color = colors[i % 3]
        if i % 4 == 3:
            records.append(
                {
                    "id": f"text-{i}",
                    "conversations": [
                        {"from": "human", "value": "How many circles are there?"},
                        {"from": "gpt", "value": f"There are {i % 3 + 1} circles."},
                    ],
                }
            )
            continue
        name = f"img{i}.png"
        rgb = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}[color]
        Image.new("RGB", (64 + 8 * (i % 3), 64), rgb).save(images / name)
        records.append(
            {
                "id": f"img-{i}",
                "image": name,
                "conversations": [
                    {"from": "human", "value": "What color is the square?\n<image>"},
                    {"from": "gpt", "value": f"The square is {color}."},
                ],
            }
        )
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path), str(images)
