"""runner.py

`run_training(config)`: one stage, end to end -- load or assemble the model, set what trains, build the
data, run the Hugging Face Trainer (single process, torchrun DDP, FSDP or DeepSpeed through accelerate),
and write a complete `from_pretrained` folder: model, processor, the resolved config and the skip report.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoTokenizer, TrainingArguments, set_seed

from ..atomic import write_json_atomic
from ..data import ConversationCollator, ConversationDataset, load_records
from ..models import PRESETS, ConvLlavaConfig, ConvLlavaForConditionalGeneration, get_preset
from ..models.assembly import assemble_from_parts, tower_image_stats
from ..processing import ConvLlavaProcessor
from .config import TrainConfig
from .feature_cache import cache_vision_features
from .lora import apply_lora
from .stages import apply_trainable_parts
from .trainer import ConvLlavaTrainer, last_complete_checkpoint

logger = logging.getLogger(__name__)


def load_model_and_processor(config: TrainConfig) -> tuple[ConvLlavaForConditionalGeneration, ConvLlavaProcessor]:
    """`model` when given (a preset or a saved model); otherwise assemble from `vision_tower` + `language_model`."""
    if config.model is None:
        chosen = {"projector_type": config.projector_type, "image_size": config.image_size}  # unset: its defaults
        model, tokenizer = assemble_from_parts(
            config.vision_tower,
            config.language_model,
            dense_connector=config.dense_connector,
            new_stage_depths=config.new_vision_stages.depths,
            new_stage_widths=config.new_vision_stages.widths,
            **{k: v for k, v in chosen.items() if v is not None},
        )
        fused = model.config.vision_tower_type == "dinosiglip"  # it normalises each branch itself
        stats = {} if fused else tower_image_stats(config.vision_tower)  # SigLIP / DINOv2 normalise with their own
        return model, ConvLlavaProcessor.from_model_config(model.config, tokenizer, template=config.template, **stats)
    if config.model in PRESETS:
        if config.tokenizer is None:
            raise ValueError(f"model {config.model!r} is a preset (random weights): also set `tokenizer`")
        model_config = get_preset(config.model)
        if config.projector_type is not None:  # an unknown name fails in the model's build, naming the known ones
            model_config.projector_type = config.projector_type
        if config.image_size is not None:
            _resize_preset(model_config, config.image_size, config.model)
        if config.dense_connector is not None:
            raise ValueError(
                f"dense_connector={config.dense_connector!r}: the presets have ConvNeXt towers, and the dense connector "
                "needs a ViT tower: assemble one from vision_tower (CLIP / SigLIP / DINOv2) + language_model"
            )
        model = ConvLlavaForConditionalGeneration(model_config)
        tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)
        return model, ConvLlavaProcessor.from_model_config(model.config, tokenizer, template=config.template)
    model = ConvLlavaForConditionalGeneration.from_pretrained(config.model, **_quantization_kwargs(config))
    _refuse_new_model_options(config, model.config)  # after loading: original checkpoints convert in memory
    return model, ConvLlavaProcessor.from_pretrained(config.model).with_template(config.template)


def _refuse_new_model_options(config: TrainConfig, saved: ConvLlavaConfig) -> None:
    """The options that shape a new model, given with a saved one that differs."""
    if config.projector_type not in (None, saved.projector_type):
        raise ValueError(
            f"projector_type={config.projector_type!r}, but {config.model} has a trained {saved.projector_type!r} "
            "projector; projector_type picks the projector of a new model only (a preset or vision_tower + "
            "language_model): drop it"
        )
    if config.dense_connector not in (None, saved.dense_connector):
        raise ValueError(
            f"dense_connector={config.dense_connector!r}, but {config.model} was built with "
            f"{saved.dense_connector!r}; it picks the connector of a new model only: drop it"
        )
    if config.image_size not in (None, saved.image_size):
        raise ValueError(
            f"image_size={config.image_size}, but {config.model} was trained at {saved.image_size} px; image_size "
            "sets the resolution of a new model only (a preset or vision_tower + language_model): drop it"
        )


def _resize_preset(model_config: ConvLlavaConfig, image_size: int, name: str) -> None:
    """Train preset `name` at another resolution: its ConvNeXt gives (image_size / stride)^2 tokens."""
    model_config.check_image_size(image_size, name)
    model_config.image_size = image_size
    model_config.vision_config.image_size = image_size


def _quantization_kwargs(config: TrainConfig) -> dict[str, Any]:
    """QLoRA: the language model in 4-bit NF4 (bitsandbytes, CUDA only); tower, projector and lm_head stay full."""
    if not config.lora.load_in_4bit:
        return {}
    if not config.lora.enabled:
        raise ValueError("lora.load_in_4bit=true (QLoRA) needs lora.enabled=true")
    if not torch.cuda.is_available():
        raise ValueError("lora.load_in_4bit=true needs a CUDA GPU and bitsandbytes; on CPU train with plain LoRA")
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=["vision_tower", "projector", "lm_head"],
        )
    }


def _bf16(setting: str | bool) -> bool:
    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(setting)


def _report_to(setting: str) -> str | list[str]:
    if setting != "auto":
        return setting
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return "none"
    return ["tensorboard"]


def training_arguments(config: TrainConfig, world_size: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=config.output,
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation(world_size),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_schedule,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        bf16=_bf16(config.bf16),
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=config.dataloader_workers,
        ddp_find_unused_parameters=world_size > 1,  # text-only batches leave the vision side unused
        # CPU-only multi-process runs (tests, CI): accelerate's MULTI_CPU mode with gloo.
        use_cpu=world_size > 1 and not torch.cuda.is_available(),
        ddp_backend=None if torch.cuda.is_available() or world_size == 1 else "gloo",
        report_to=_report_to(config.report_to),
        deepspeed=config.deepspeed,
    )


def _records(config: TrainConfig) -> list:
    """LLaVA-format records from a file / dataset folder, or from a recipe stage (`recipe.yaml:stage`)."""
    if ".yaml:" in str(config.data) or ".yml:" in str(config.data):
        from ..data.recipes.mix import stage_records

        if config.image_folder is None:
            raise ValueError("a recipe stage as --data needs --image-folder: the data root it was prepared under")
        return stage_records(str(config.data), config.image_folder)
    return load_records(config.data)


def run_training(config: TrainConfig, resume: bool = False, callbacks: list[Any] | None = None) -> Path:
    """Train one stage; return the output folder. `callbacks`: extra `TrainerCallback`s.

    The process group that the Trainer opens under torchrun stays open, so that the next stage can run in the same
    process; call `torch.distributed.destroy_process_group()` after the last one (`convllava train` does).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    set_seed(config.seed)
    model, processor = load_model_and_processor(config)
    apply_trainable_parts(model, config.trainable)
    if config.lora.enabled:
        if config.lora.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
            apply_trainable_parts(model, config.trainable)  # prepare_model_for_kbit_training froze everything
        model = apply_lora(model, config.lora)
    dataset = ConversationDataset(
        _records(config),
        processor,
        image_folder=config.image_folder,
        max_length=config.max_length,
        move_image_to_front=config.move_image_to_front,
    )
    if config.cache_vision_features:
        dataset.vision_features = cache_vision_features(model, processor, dataset.image_paths())
    args = training_arguments(config, world_size)
    trainer = ConvLlavaTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=ConversationCollator(processor.tokenizer.pad_token_id or 0),
        stage_config=config,
        group_by_modality_length=config.group_by_modality_length,
        length_group_batches=config.length_group_batches,
        callbacks=callbacks,
    )
    checkpoint = last_complete_checkpoint(config.output) if resume else None
    if resume and checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s; starting from the beginning", config.output)
    trainer.train(resume_from_checkpoint=checkpoint)

    output = Path(config.output)
    counts, ids = trainer.gathered_skips()
    trainer.save_model(str(output))
    if trainer.args.should_save:
        processor.save_pretrained(output)
        (output / "train_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        write_json_atomic(output / "skip_report.json", {"counts": counts, "record_ids": ids, "stage": config.stage})
        write_json_atomic(output / "train_log.json", trainer.state.log_history)
        if any(counts.values()):
            logger.warning("skipped samples: %s", {k: v for k, v in counts.items() if v})
    return output
