"""Stage YAML configs: loading, command-line overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from convllava.training import load_train_config

CONFIGS = Path(__file__).parent.parent / "configs"
REQUIRED = ["model=m", "data=d.jsonl"]


@pytest.mark.parametrize(
    ("name", "lr", "batch", "vision_from"),
    [("projector-init", 3e-4, 256, 4), ("vl-pretrain", 2e-5, 256, 2), ("instruct", 2e-5, 128, None)],
)
def test_shipped_stage_configs_carry_the_paper_hyperparameters(name, lr, batch, vision_from):
    config = load_train_config(CONFIGS / f"{name}.yaml", REQUIRED)
    assert config.stage == name
    assert config.learning_rate == lr and config.global_batch_size == batch
    assert config.trainable.vision_from_stage == vision_from
    assert (config.num_epochs, config.lr_schedule, config.warmup_ratio, config.weight_decay) == (1, "cosine", 0.03, 0.0)
    assert config.gradient_checkpointing and config.template == "vicuna_v1"


def test_stage1_keeps_lm_head_frozen_by_default_and_can_train_it():
    assert not load_train_config(CONFIGS / "projector-init.yaml", REQUIRED).trainable.lm_head
    config = load_train_config(CONFIGS / "projector-init.yaml", [*REQUIRED, "trainable.lm_head=true"])
    assert config.trainable.lm_head


def test_overrides_parse_yaml_values_and_scientific_floats():
    config = load_train_config(None, [*REQUIRED, "learning_rate=1e-4", "per_device_batch_size=2", "lora.enabled=true"])
    assert config.learning_rate == 1e-4 and isinstance(config.learning_rate, float)
    assert config.per_device_batch_size == 2 and config.lora.enabled


def test_unknown_keys_and_missing_inputs_are_errors():
    with pytest.raises(ValueError, match=r"unknown training config key\(s\) \['learning_rat'\]"):
        load_train_config(None, [*REQUIRED, "learning_rat=1"])
    with pytest.raises(ValueError, match=r"unknown training config.trainable key"):
        load_train_config(None, [*REQUIRED, "trainable.llm=true"])
    with pytest.raises(ValueError, match="set `data`"):
        load_train_config(None, ["model=m"])
    with pytest.raises(ValueError, match="key=value"):
        load_train_config(None, [*REQUIRED, "oops"])
    with pytest.raises(FileNotFoundError, match="configs/"):
        load_train_config("nope.yaml", REQUIRED)


def test_global_batch_must_split_over_processes():
    config = load_train_config(CONFIGS / "instruct.yaml", REQUIRED)
    assert config.gradient_accumulation(world_size=2) == 128 // (8 * 2)
    with pytest.raises(ValueError, match="not a multiple"):
        config.gradient_accumulation(world_size=3)


def test_qlora_needs_lora_and_a_gpu(tmp_path):
    from convllava.training.runner import _quantization_kwargs

    config = load_train_config(None, [*REQUIRED, "lora.load_in_4bit=true"])
    with pytest.raises(ValueError, match=r"needs lora\.enabled=true"):
        _quantization_kwargs(config)
    config = load_train_config(None, [*REQUIRED, "lora.load_in_4bit=true", "lora.enabled=true"])
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="CUDA GPU and bitsandbytes"):
            _quantization_kwargs(config)
