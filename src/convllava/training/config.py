"""config.py

`TrainConfig`: everything one training stage needs, loaded from a YAML file under `configs/` and
overridden from the command line (`key=value`, dotted keys for nested fields). Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainableParts:
    """What trains. `vision_from_stage`: ConvNeXt stages from this 0-based index on train (None = frozen)."""

    vision_from_stage: int | None = None
    projector: bool = True
    language_model: bool = False
    lm_head: bool = False


@dataclass
class NewVisionStages:
    """Stages appended to a 4-stage ConvNeXt when the model is assembled from parts (stage 1)."""

    depths: list[int] = field(default_factory=lambda: [6])
    widths: list[int] = field(default_factory=lambda: [3072])


@dataclass
class LoraOptions:
    enabled: bool = False
    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    load_in_4bit: bool = False  # QLoRA (CUDA + bitsandbytes)


@dataclass
class TrainConfig:
    stage: str = "instruct"
    # inputs and outputs
    model: str | None = None  # a convllava directory, a Hub id, or a preset name (random init, needs tokenizer)
    tokenizer: str | None = None  # only for preset models
    vision_tower: str | None = None  # with language_model: assemble a new model (stage 1)
    language_model: str | None = None
    projector_type: str | None = None  # a new projector (assembly: default mlp2x_gelu; presets: replaces theirs)
    dense_connector: str | None = None  # assembly with a ViT tower: "dci" / "sci" (models/vision/dense.py)
    image_size: int | None = None  # a new model's image side: from parts, default 768; a preset: replaces its own
    new_vision_stages: NewVisionStages = field(default_factory=NewVisionStages)
    data: str | None = None
    image_folder: str | None = None
    output: str = "runs/train"
    template: str = "vicuna_v1"
    # what trains
    trainable: TrainableParts = field(default_factory=TrainableParts)
    lora: LoraOptions = field(default_factory=LoraOptions)
    # optimisation
    learning_rate: float = 2e-5
    projector_lr: float | None = None
    vision_tower_lr: float | None = None
    global_batch_size: int = 128
    per_device_batch_size: int = 4
    num_epochs: float = 1.0
    max_steps: int = -1
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: str | bool = "auto"  # auto: bf16 where the device has it
    gradient_checkpointing: bool = True
    max_length: int = 2048
    move_image_to_front: bool = True
    group_by_modality_length: bool = True
    length_group_batches: int = 1  # global batches sorted by length together (1: LLaVA's grouping)
    cache_vision_features: bool = False  # a frozen tower's outputs computed once per image (feature_cache.py)
    seed: int = 42
    # bookkeeping
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 1
    dataloader_workers: int = 0
    report_to: str = "auto"  # auto: TensorBoard when installed
    deepspeed: str | None = None

    def validate(self) -> None:
        if self.model is None and not (self.vision_tower and self.language_model):
            raise ValueError("set `model` (a convllava model or preset) or both `vision_tower` and `language_model`")
        if self.data is None:
            raise ValueError("set `data` (a LLaVA-format .json / .jsonl file or a datasets folder)")
        for name in ("global_batch_size", "per_device_batch_size", "max_length", "length_group_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_size is not None and self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")

    def gradient_accumulation(self, world_size: int) -> int:
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not a multiple of per_device_batch_size x processes "
                f"= {self.per_device_batch_size} x {world_size}; change one of them"
            )
        return self.global_batch_size // per_step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = _parse_value(value)
    return data


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        sub = fields[name].default_factory if fields[name].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub()) and isinstance(value, dict):
            value = _build(type(sub()), value, f"{where}.{name}")
        if isinstance(value, str) and str(fields[name].type).startswith("float"):
            try:  # YAML 1.1 reads "3e-4" as a string
                value = float(value)
            except ValueError:
                raise ValueError(f"{where} key {name!r} must be a number, got {value!r}") from None
        kwargs[name] = value
    return cls(**kwargs)


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a stage YAML (or start from defaults), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {str(path)!r} does not exist (see configs/)")
        data = yaml.safe_load(path.read_text()) or {}
    data = apply_overrides(data, overrides or [])
    config = _build(TrainConfig, data, "training config")
    config.validate()
    return config
