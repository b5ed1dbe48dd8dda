"""boxes.py

RefCOCO-style grounding: parsing a box from the model's answer, IoU, centre accuracy, and the conversions
between boxes normalised to the original image and to the padded square the `pad` mode shows the model
(`expand2square` pastes the image at ((S - W) // 2, (S - H) // 2), S = max(W, H)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_LMMS_BOX = re.compile(r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]")
_ANY_BRACKET = re.compile(r"\[\s*(-?\d*\.?\d+)[\s,]+(-?\d*\.?\d+)[\s,]+(-?\d*\.?\d+)[\s,]+(-?\d*\.?\d+)\s*\]")
_NUMBER = re.compile(r"-?\d*\.?\d+")


def parse_box(text: str, protocol: str = "lmms-eval") -> list[float]:
    """lmms-eval: the first `[a, b, c, d]` (comma after each number, no exponent, no '.5'), else [0, 0, 0, 0].
    vlmevalkit: the first bracketed four numbers separated by commas or spaces, else the first four numbers."""
    if protocol == "lmms-eval":
        match = _LMMS_BOX.search(text)
        return [float(match.group(i)) for i in range(1, 5)] if match else [0.0, 0.0, 0.0, 0.0]
    if protocol == "vlmevalkit":
        match = _ANY_BRACKET.search(text)
        if match:
            return [float(match.group(i)) for i in range(1, 5)]
        numbers = _NUMBER.findall(text)
        return [float(n) for n in numbers[:4]] if len(numbers) >= 4 else [0.0, 0.0, 0.0, 0.0]
    raise ValueError(f"unknown protocol {protocol!r}")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of [x1, y1, x2, y2] boxes. The reference divides unguarded; a zero union here gives 0."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union == 0 else inter / union


def center_accuracy(gt: Sequence[float], pred: Sequence[float]) -> bool:
    """The predicted box's centre lies inside the ground truth (inclusive)."""
    cx, cy = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
    return gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3]


def xywh_to_normalized(bbox: Sequence[float], width: int, height: int) -> list[float]:
    """COCO [x, y, w, h] pixels -> [x1, y1, x2, y2] normalised by the original size (lmms-eval's GT)."""
    x, y, w, h = bbox
    return [x / width, y / height, (x + w) / width, (y + h) / height]


def padded_to_original(box: Sequence[float], width: int, height: int) -> list[float]:
    """A box normalised to the padded square -> normalised to the original image."""
    side = max(width, height)
    dx, dy = (side - width) // 2, (side - height) // 2
    x1, y1, x2, y2 = box
    return [(x1 * side - dx) / width, (y1 * side - dy) / height, (x2 * side - dx) / width, (y2 * side - dy) / height]


def original_to_padded(box: Sequence[float], width: int, height: int) -> list[float]:
    """A box normalised to the original image -> normalised to the padded square."""
    side = max(width, height)
    dx, dy = (side - width) // 2, (side - height) // 2
    x1, y1, x2, y2 = box
    return [(x1 * width + dx) / side, (y1 * height + dy) / side, (x2 * width + dx) / side, (y2 * height + dy) / side]
