"""trainer.py

`ConvLlavaTrainer`: Hugging Face `Trainer` plus what ConvLLaVA training needs -- the stage's AdamW groups, the modality- and
length-grouped sampler, per-reason counting of skipped samples (summed over processes), a logged
tokens/s, and checkpoints marked complete only once fully written (resume ignores unmarked ones).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..atomic import write_json_atomic
from ..data import ModalityLengthGroupedSampler, skip_summary
from .config import TrainConfig
from .lora import load_extra_trainables, save_extra_trainables
from .stages import parameter_groups

COMPLETE_MARKER = "checkpoint_complete.json"


class ConvLlavaTrainer(Trainer):
    def __init__(
        self,
        *args: Any,
        stage_config: TrainConfig | None = None,
        group_by_modality_length: bool = True,
        length_group_batches: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stage_config = stage_config
        self.group_by_modality_length = group_by_modality_length
        self.length_group_batches = length_group_batches
        self.skip_counts: Counter[str] = Counter()
        self.skipped_ids: dict[str, list[str]] = {}
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()

    # --- data order ---------------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.group_by_modality_length or not hasattr(dataset, "lengths"):
            return super()._get_train_sampler(dataset)
        global_batch = (
            self.args.per_device_train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps
        )
        return ModalityLengthGroupedSampler(
            dataset.lengths(), global_batch, seed=self.args.seed, batches_per_group=self.length_group_batches
        )

    # --- optimizer -------------------------------------------------------------------------------------------
    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """AdamW with the stage's per-module learning rates, built inside the Trainer so FSDP / DeepSpeed see it."""
        if self.stage_config is None:
            return super().create_optimizer(model)
        if self.optimizer is None:
            target = model if model is not None else self.model
            self.optimizer = torch.optim.AdamW(
                parameter_groups(target, self.stage_config), betas=(0.9, 0.999), eps=1e-8
            )
        return self.optimizer

    # --- loss, skip accounting, throughput ----------------------------------------------------------------
    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        for reason, record_id in inputs.pop("skipped", []):
            self.skip_counts[reason] += 1
            self.skipped_ids.setdefault(reason, []).append(record_id)
        self._tokens_since_log += int(inputs["attention_mask"].sum())
        result = super().compute_loss(model, inputs, *args, **kwargs)
        loss = result[0] if isinstance(result, tuple) else result
        if not loss.requires_grad:
            # Nothing trainable took part (a text-only batch while only the vision side trains): make it a
            # zero-gradient step over every trainable parameter instead of failing, as LLaVA's zero image does.
            anchor = sum((p.sum() * 0.0 for p in model.parameters() if p.requires_grad), loss.new_zeros(()))
            loss = loss + anchor
            result = (loss, *result[1:]) if isinstance(result, tuple) else loss
        return result

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            now = time.perf_counter()
            logs["tokens_per_second"] = round(
                self._tokens_since_log * self.args.world_size / max(now - self._last_log_time, 1e-9), 1
            )
            logs["samples_skipped"] = sum(self.skip_counts.values())
            self._tokens_since_log, self._last_log_time = 0, now
        super().log(logs, *args, **kwargs)

    def gathered_skips(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """Skip counts and ids summed over all processes."""
        local = (dict(self.skip_counts), self.skipped_ids)
        if dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
        else:
            gathered = [local]
        counts: Counter[str] = Counter()
        ids: dict[str, list[str]] = {}
        for part_counts, part_ids in gathered:
            counts.update(part_counts)
            for reason, values in part_ids.items():
                ids.setdefault(reason, []).extend(values)
        return skip_summary(counts), ids

    # --- checkpoints --------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        if _is_peft(self.model):  # what the adapter file leaves out (LLaVA-1.6's image_newline)
            save_extra_trainables(self.model, output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if _is_peft(self.model):
            load_extra_trainables(self.model, resume_from_checkpoint)

    def _save_checkpoint(self, model: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
        super()._save_checkpoint(model, trial, *args, **kwargs)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if self.args.should_save:
            folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            write_json_atomic(folder / COMPLETE_MARKER, {"global_step": self.state.global_step})


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest-step checkpoint folder that carries the completion marker."""
    folder = Path(output_dir)
    candidates = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and (path / COMPLETE_MARKER).is_file():
            candidates.append((int(step), path))
    return str(max(candidates)[1]) if candidates else None
