"""data/

Training data: the LLaVA conversation format (JSON / JSONL / `datasets`), the lazy dataset with its
skip accounting, the padding collator and the modality- and length-grouped sampler.
"""

from __future__ import annotations

from .collator import ConversationCollator
from .dataset import SKIP_REASONS, ConversationDataset, skip_summary
from .records import RecordError, check_record, load_records, move_images_to_front, record_images
from .sampler import ModalityLengthGroupedSampler

__all__ = [
    "SKIP_REASONS",
    "ConversationCollator",
    "ConversationDataset",
    "ModalityLengthGroupedSampler",
    "RecordError",
    "check_record",
    "load_records",
    "move_images_to_front",
    "record_images",
    "skip_summary",
]
