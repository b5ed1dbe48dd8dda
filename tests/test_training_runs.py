"""Training runs end to end: resume after a kill, DDP (torchrun, gloo) against gradient accumulation,
LoRA with merge, and assembling a model from a ConvNeXt and a causal LM."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from convllava.training import last_complete_checkpoint, load_train_config, run_training
from helpers import random_image, write_conversation_data


def _config(saved_tiny, tmp_path, name, *extra):
    data, images = write_conversation_data(tmp_path / "data", n=16)
    return load_train_config(
        None,
        [
            f"model={saved_tiny}",
            f"data={data}",
            f"image_folder={images}",
            f"output={tmp_path / name}",
            "trainable.language_model=true",
            "learning_rate=1e-3",
            "global_batch_size=4",
            "per_device_batch_size=2",
            "report_to=none",
            *extra,
        ],
    )


def _losses(output) -> dict[int, float]:
    log = json.loads((output / "train_log.json").read_text())
    return {entry["step"]: entry["loss"] for entry in log if "loss" in entry}


class _KillAfter(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated kill after step {self.step}")


def test_resume_after_a_kill_continues_the_same_loss_sequence(saved_tiny, tmp_path):
    common = ("num_epochs=2", "save_steps=3", "save_total_limit=5")
    full = run_training(_config(saved_tiny, tmp_path, "full", *common))
    expected = _losses(full)
    assert len(expected) == 8

    config = _config(saved_tiny, tmp_path, "killed", *common)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, callbacks=[_KillAfter(4)])
    output = tmp_path / "killed"
    assert last_complete_checkpoint(output).endswith("checkpoint-3")
    (output / "checkpoint-5").mkdir()  # a half-written checkpoint (no completion marker) is never resumed from
    assert last_complete_checkpoint(output).endswith("checkpoint-3")

    resumed = _losses(run_training(config, resume=True))
    for step in range(4, 9):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process_with_accumulation(saved_tiny, tmp_path):
    single = run_training(_config(saved_tiny, tmp_path, "single", "gradient_checkpointing=false"))
    data, images = write_conversation_data(tmp_path / "data", n=16)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "convllava.cli.main", "train", "--model", str(saved_tiny), "--data", data, "--image-folder", images,
        "--output", str(tmp_path / "ddp"), "trainable.language_model=true", "learning_rate=1e-3",
        "global_batch_size=4", "per_device_batch_size=2", "report_to=none", "gradient_checkpointing=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_file(single / "model.safetensors"), load_file(tmp_path / "ddp" / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    changed = max((a[k].float() - load_file(saved_tiny / "model.safetensors")[k].float()).abs().max().item() for k in a)
    assert changed > 1e-3  # it did train
    assert worst <= 1e-5


def test_lora_training_and_merge_give_the_adapted_model(saved_tiny, tmp_path, processor):
    from peft import PeftModel

    from convllava import ConvLlavaForConditionalGeneration
    from convllava.training.lora import merge_lora

    output = run_training(
        _config(saved_tiny, tmp_path, "lora", "lora.enabled=true", "lora.r=4", "lora.alpha=8", "max_steps=2",
                "learning_rate=1e-2", "gradient_checkpointing=false")
    )  # fmt: skip
    assert (output / "adapter_config.json").is_file()
    merged = merge_lora(output, tmp_path / "merged")
    base = ConvLlavaForConditionalGeneration.from_pretrained(saved_tiny)
    adapted = PeftModel.from_pretrained(base, str(output)).eval()
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(merged).eval()
    inputs = processor(text=["USER: What color is the square? ASSISTANT:"])
    with torch.no_grad():
        expected, got = adapted(**inputs).logits, reloaded(**inputs).logits
        original = ConvLlavaForConditionalGeneration.from_pretrained(saved_tiny)(**inputs).logits
    assert torch.allclose(expected, got, atol=1e-4)
    assert not torch.allclose(original, got, atol=1e-4)  # the adapter changed something
    # the projector trained fully beside the adapters, and the merge kept it
    initial = ConvLlavaForConditionalGeneration.from_pretrained(saved_tiny).model.projector[0].weight
    assert not torch.equal(reloaded.model.projector[0].weight, initial)


def test_assemble_from_a_convnext_and_a_causal_lm(tokenizer, tmp_path):
    from transformers import ConvNextConfig, ConvNextModel, LlamaConfig, LlamaForCausalLM

    from convllava.models.assembly import assemble_from_parts

    torch.manual_seed(0)
    convnext = ConvNextModel(ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64]))
    convnext.save_pretrained(tmp_path / "convnext")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=4))  # fmt: skip
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    model, tok = assemble_from_parts(
        str(tmp_path / "convnext"), str(tmp_path / "llm"), image_size=128, new_stage_depths=[2], new_stage_widths=[96]
    )
    config = model.config
    assert config.vision_config.num_stages == 5 and config.vision_stride == 64 and config.vision_hidden_size == 96
    assert config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert torch.equal(model.model.vision_tower.encoder.stages[0].layers[0].pwconv1.weight,
                       convnext.encoder.stages[0].layers[0].pwconv1.weight)  # fmt: skip
    assert torch.equal(model.model.language_model.layers[1].mlp.up_proj.weight, llm.model.layers[1].mlp.up_proj.weight)
    assert torch.equal(model.lm_head.weight, llm.lm_head.weight)
    stage5 = model.model.vision_tower.encoder.stages[4]
    assert torch.all(stage5.layers[0].layer_scale_parameter == 1e-6)
    projector_weight = model.model.projector[0].weight
    assert projector_weight.abs().max() <= 1 / 96**0.5  # PyTorch default (kaiming-uniform) init, not normal(0.02)
    # 5 stages -> stride 64: 160 px would lose its border rows in the strided convolutions; refused before the LM
    # is read (this LM path does not exist)
    with pytest.raises(ValueError, match=r"image_size=160 is not a multiple of .*convnext's vision stride 64: .* 128"):
        assemble_from_parts(str(tmp_path / "convnext"), str(tmp_path / "no-llm"), image_size=160, new_stage_depths=[2],
                            new_stage_widths=[96])  # fmt: skip


def test_stage1_from_the_cli_changes_only_stage5_and_the_projector(tokenizer, tmp_path):
    from transformers import set_seed

    from convllava import ConvLlavaForConditionalGeneration, get_preset
    from convllava.cli.main import main

    tokenizer.save_pretrained(tmp_path / "tok")
    data, images = write_conversation_data(tmp_path / "data", n=8)
    argv = ["train", "--config", "configs/projector-init.yaml", "--model", "convllava-tiny", "--data", data,
            "--image-folder", images, "--output", str(tmp_path / "s1"), f"tokenizer={tmp_path / 'tok'}",
            "image_size=256", "global_batch_size=4", "per_device_batch_size=2", "report_to=none"]  # fmt: skip
    assert main(argv) == 0
    set_seed(42)  # the config's seed: the same random start as the run
    start = dict(ConvLlavaForConditionalGeneration(get_preset("convllava-tiny")).named_parameters())
    trained = dict(ConvLlavaForConditionalGeneration.from_pretrained(tmp_path / "s1").named_parameters())
    changed = {name for name in start if not torch.equal(start[name], trained[name])}
    assert changed, "nothing trained"
    assert all(n.startswith(("model.projector.", "model.vision_tower.encoder.stages.4.")) for n in changed), changed
    assert any(n.startswith("model.vision_tower.encoder.stages.4.") for n in changed)


def test_projector_type_swaps_a_presets_projector_and_round_trips(tokenizer, tmp_path, saved_tiny):
    from convllava import ConvLlavaForConditionalGeneration
    from convllava.models.zoo.original import export_original
    from convllava.training.runner import run_training

    tokenizer.save_pretrained(tmp_path / "tok")
    data, images = write_conversation_data(tmp_path / "data", n=8)
    base = [f"data={data}", f"image_folder={images}", "global_batch_size=4", "per_device_batch_size=4", "max_steps=2",
            "report_to=none", "trainable.vision_from_stage=0", "projector_type=norm_mlp2x_gelu"]  # fmt: skip
    run_training(load_train_config(None, [*base, "model=convllava-tiny", f"tokenizer={tmp_path / 'tok'}",
                                          f"output={tmp_path / 'norm'}"]))  # fmt: skip
    model = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path / "norm").eval()
    assert model.config.projector_type == "norm_mlp2x_gelu"
    start = ConvLlavaForConditionalGeneration(model.config).model.projector[0]
    assert not torch.equal(model.model.projector[0].weight, start.weight)  # the norm's scale trained and reloaded
    pixels = torch.randn(2, 3, 256, 256)
    again = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path / "norm").eval()
    with torch.no_grad():
        assert torch.equal(torch.stack(model.get_image_features(pixels)), torch.stack(again.get_image_features(pixels)))
    with pytest.raises(ValueError, match="no counterpart in the original LLaVA code"):
        export_original(model.config, model.state_dict())
    # a saved model keeps the projector it was trained with
    with pytest.raises(ValueError, match="picks the projector of a new model only"):
        run_training(load_train_config(None, [*base, f"model={saved_tiny}", f"output={tmp_path / 'x'}"]))


def test_image_size_trains_a_preset_at_another_resolution(tokenizer, tmp_path, saved_tiny):
    from convllava import ConvLlavaForConditionalGeneration
    from convllava.processing import ConvLlavaProcessor

    tokenizer.save_pretrained(tmp_path / "tok")
    data, images = write_conversation_data(tmp_path / "data", n=4)
    base = [f"data={data}", f"image_folder={images}", "global_batch_size=4", "per_device_batch_size=4", "max_steps=1",
            "report_to=none", "model=convllava-tiny", f"tokenizer={tmp_path / 'tok'}"]  # fmt: skip
    run_training(load_train_config(None, [*base, "image_size=128", f"output={tmp_path / 'small'}"]))
    model = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path / "small")
    processor = ConvLlavaProcessor.from_pretrained(tmp_path / "small")
    assert model.config.image_size == model.config.vision_config.image_size == 128
    inputs = processor(text="<image>\nhi", images=[random_image(300, 200, seed=4)], return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (128, 128)
    assert processor.num_image_tokens(128, 128) == 4  # (128 / 64)^2, not the preset's 16
    with pytest.raises(ValueError, match=r"not a multiple of convllava-tiny's vision stride 64: .* use 128"):
        run_training(load_train_config(None, [*base, "image_size=120", f"output={tmp_path / 'bad'}"]))
    assert not (tmp_path / "bad").exists()
    # a trained model keeps its resolution
    with pytest.raises(ValueError, match="was trained at 256 px; image_size sets the resolution of a new model only"):
        run_training(load_train_config(None, [*base[:-2], f"model={saved_tiny}", "image_size=128",
                                              f"output={tmp_path / 'x'}"]))  # fmt: skip
