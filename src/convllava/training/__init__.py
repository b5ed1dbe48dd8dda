"""training/

The three-stage recipe on the Hugging Face Trainer: stage configs (`config.py`), what trains and the
optimizer groups (`stages.py`), the Trainer subclass (`trainer.py`), LoRA (`lora.py`) and the
end-to-end stage runner (`runner.py`).
"""

from __future__ import annotations

from .config import LoraOptions, NewVisionStages, TrainableParts, TrainConfig, apply_overrides, load_train_config
from .runner import load_model_and_processor, run_training
from .stages import apply_trainable_parts, parameter_groups
from .trainer import ConvLlavaTrainer, last_complete_checkpoint

__all__ = [
    "ConvLlavaTrainer",
    "LoraOptions",
    "NewVisionStages",
    "TrainConfig",
    "TrainableParts",
    "apply_overrides",
    "apply_trainable_parts",
    "last_complete_checkpoint",
    "load_model_and_processor",
    "load_train_config",
    "parameter_groups",
    "run_training",
]
