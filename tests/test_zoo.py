"""Original ConvLLaVA checkpoints: loading, converting and exporting, checked against a reference forward
written here from the original recipe (ConvNextModel encoder, raw stage-5 features, mlp2x_gelu, splice at
the -200 sentinel, LlamaForCausalLM)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import ConvNextConfig, ConvNextModel, LlamaConfig, LlamaForCausalLM

from conftest import CORPUS
from convllava import ConvLlavaForConditionalGeneration, ConvLlavaProcessor
from convllava.models.zoo import CheckpointError, convert_checkpoint, export_checkpoint, load_original
from convllava.processing import train_tokenizer
from helpers import random_image

IMAGE_SIZE = 128
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A tiny checkpoint in exactly the released layout: sharded .bin LLM + separate ConvNeXt folder."""
    root = tmp_path_factory.mktemp("original")
    torch.manual_seed(1)
    tower_config = ConvNextConfig(num_stages=5, depths=[1, 1, 2, 1, 2], hidden_sizes=[8, 16, 32, 64, 96],
                                  layer_norm_eps=1e-12, image_size=IMAGE_SIZE)  # fmt: skip
    tower = ConvNextModel(tower_config).eval()
    with torch.no_grad():
        for stage in tower.encoder.stages:
            for layer in stage.layers:
                layer.layer_scale_parameter.uniform_(0.1, 0.5)  # make every block matter
    (root / "tower").mkdir()
    torch.save(tower.state_dict(), root / "tower" / "pytorch_model.bin")
    (root / "tower" / "config.json").write_text(json.dumps({**tower_config.to_dict(), "model_type": "convnext"}))
    (root / "tower" / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "size": {"shortest_edge": IMAGE_SIZE},
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "image_processor_type": "CLIPImageProcessor"}))  # fmt: skip

    llm_config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)  # fmt: skip
    llm = LlamaForCausalLM(llm_config).eval()
    projector = nn.Sequential(nn.Linear(96, 64), nn.GELU(), nn.Linear(64, 64))
    state = {**llm.state_dict(), **{f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}}
    state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in tower.state_dict().items()})
    keys = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
        "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2 :],
    }
    ckpt = root / "ckpt"
    ckpt.mkdir()
    for name, shard_keys in shards.items():
        torch.save({k: state[k] for k in shard_keys}, ckpt / name)
    weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
    (ckpt / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {**llm_config.to_dict(), "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava",
              "mm_vision_tower": str(root / "tower"), "mm_hidden_size": 96, "mm_projector_type": "mlp2x_gelu",
              "mm_vision_select_layer": -1, "mm_vision_select_feature": "patch", "mm_use_im_start_end": False,
              "mm_use_im_patch_token": False, "image_aspect_ratio": "pad", "tune_vision_tower": True,
              "tokenizer_model_max_length": 2048, "use_mm_proj": True}  # fmt: skip
    (ckpt / "config.json").write_text(json.dumps(config))
    tokenizer = train_tokenizer(CORPUS * 20, vocab_size=512, image_token=False)
    tokenizer.save_pretrained(ckpt)
    return {"root": root, "ckpt": ckpt, "tower": tower, "llm": llm, "projector": projector, "tokenizer": tokenizer}


def tokenizer_image_token(prompt, tokenizer, image_token_index=-200):
    """The original `llava/mm_utils.py::tokenizer_image_token`."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    input_ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(chunks[0][0])
    separated = [
        x for pair in zip(chunks, [[image_token_index] * (offset + 1)] * len(chunks), strict=True) for x in pair
    ][:-1]
    for x in separated:
        input_ids.extend(x[offset:])
    return input_ids


def reference_logits(parts, prompt, pixel_values):
    """The original forward: encoder hidden_states[-1] -> flatten -> projector -> splice at -200 -> Llama."""
    ids = tokenizer_image_token(prompt, parts["tokenizer"])
    with torch.no_grad():
        features = (
            parts["tower"].encoder(parts["tower"].embeddings(pixel_values), output_hidden_states=True).hidden_states[-1]
        )
        features = parts["projector"](features.permute(0, 2, 3, 1).reshape(features.shape[0], -1, features.shape[1]))
        at = ids.index(-200)
        embed = parts["llm"].model.embed_tokens
        pieces = [embed(torch.tensor(ids[:at])), features[0], embed(torch.tensor(ids[at + 1 :]))]
        return parts["llm"](inputs_embeds=torch.cat(pieces)[None]).logits[0]


def conversation_prompt(question: str) -> str:
    return f"{SYSTEM} USER: <image>\n{question} ASSISTANT:"


def _check_against_reference(model, processor, parts):
    images = [random_image(100, 140, seed=7), random_image(128, 90, seed=8)]
    questions = ["What color is the square?", "How many circles are there? Describe the picture."]
    prompts = [conversation_prompt(q) for q in questions]
    batch = processor(text=prompts, images=images)
    with torch.no_grad():
        ours = model(**batch).logits
    for row, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
        pixel_values = processor.image_processor(image)["pixel_values"]
        expected = reference_logits(parts, prompt, pixel_values)
        got = ours[row][batch["attention_mask"][row].bool()]  # left padding: the valid tail
        assert got.shape == expected.shape
        assert (got - expected).abs().max() <= 1e-4, row
        single = processor(text=[prompt], images=[image])
        with torch.no_grad():
            assert (model(**single).logits[0] - expected).abs().max() <= 1e-4


def test_original_checkpoint_loads_with_reference_numerics(original):
    model, processor = load_original(original["ckpt"])
    assert model.config.image_size == IMAGE_SIZE and model.config.vision_config.num_stages == 5
    assert processor.image_token_id == 512 == model.config.image_token_id
    _check_against_reference(model, processor, original)
    via_class = ConvLlavaForConditionalGeneration.from_pretrained(original["ckpt"])
    assert torch.equal(via_class.lm_head.weight, model.lm_head.weight)


def test_converted_and_reexported_copies_keep_the_numerics(original, tmp_path):
    converted = convert_checkpoint(original["ckpt"], tmp_path / "converted")
    model = ConvLlavaForConditionalGeneration.from_pretrained(converted)
    processor = ConvLlavaProcessor.from_pretrained(converted)
    _check_against_reference(model, processor, original)

    exported = export_checkpoint(converted, tmp_path / "exported")
    config = json.loads((exported / "config.json").read_text())
    assert config["architectures"] == ["LlavaLlamaForCausalLM"] and config["mm_projector_type"] == "mlp2x_gelu"
    state = torch.load(exported / "pytorch_model.bin", weights_only=True)
    assert "model.mm_projector.0.weight" in state and "model.layers.0.self_attn.q_proj.weight" in state
    tower_state = torch.load(exported / "vision_tower" / "pytorch_model.bin", weights_only=True)
    assert "encoder.stages.4.layers.1.pwconv2.weight" in tower_state
    reloaded, processor = load_original(exported)
    _check_against_reference(reloaded, processor, original)


def test_prompt_ids_match_the_original_tokenizer_image_token(original):
    _, processor = load_original(original["ckpt"])
    prompt = f"{SYSTEM} USER: <image>\nWhat is this? ASSISTANT: A red square.</s>USER: How many? ASSISTANT:"
    ours = processor(text=[prompt], images=[random_image(64, 64)])["input_ids"][0].tolist()
    reference = tokenizer_image_token(prompt, original["tokenizer"])
    n = ours.count(processor.image_token_id)
    at = reference.index(-200)
    assert n == (IMAGE_SIZE // 64) ** 2
    assert ours == reference[:at] + [processor.image_token_id] * n + reference[at + 1 :]


def test_bad_checkpoints_name_the_file_and_key(original, tmp_path):
    import shutil

    broken = tmp_path / "missing-shard"
    shutil.copytree(original["ckpt"], broken)
    (broken / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(CheckpointError, match=r"pytorch_model-00002-of-00002\.bin"):
        load_original(broken)

    no_tower = tmp_path / "no-tower"
    shutil.copytree(original["ckpt"], no_tower)
    config = json.loads((no_tower / "config.json").read_text())
    (no_tower / "config.json").write_text(json.dumps({**config, "mm_vision_tower": str(tmp_path / "nowhere")}))
    index = json.loads((no_tower / "pytorch_model.bin.index.json").read_text())
    for shard in set(index["weight_map"].values()):  # strip the in-checkpoint vision copy too
        state = torch.load(no_tower / shard, weights_only=True)
        torch.save({k: v for k, v in state.items() if "vision_tower" not in k}, no_tower / shard)
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if "vision_tower" not in k}
    (no_tower / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="mm_vision_tower"):
        load_original(no_tower)

    wrong = tmp_path / "wrong-tower"
    shutil.copytree(original["root"] / "tower", wrong)
    tower_config = json.loads((wrong / "config.json").read_text())
    tower_config["hidden_sizes"][-1] = 48
    bad_tower = ConvNextModel(ConvNextConfig(**{k: v for k, v in tower_config.items() if k != "model_type"}))
    torch.save(bad_tower.state_dict(), wrong / "pytorch_model.bin")
    (wrong / "config.json").write_text(json.dumps(tower_config))
    mismatched = tmp_path / "mismatched"
    shutil.copytree(original["ckpt"], mismatched)
    (mismatched / "config.json").write_text(json.dumps({**config, "mm_vision_tower": str(wrong)}))
    with pytest.raises(CheckpointError, match=r"model\.projector\.0\.weight"):
        load_original(mismatched)


def test_in_checkpoint_vision_keys_are_the_fallback(original, tmp_path):
    import shutil

    folder = tmp_path / "fallback"
    shutil.copytree(original["ckpt"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "mm_vision_tower": str(tmp_path / "gone"), "mm_vision_resolution": IMAGE_SIZE})
    )
    model, processor = load_original(folder)
    assert model.config.vision_config.depths == [1, 1, 2, 1, 2]
    _check_against_reference(model, processor, original)


def test_convert_and_export_commands(original, tmp_path, capsys):
    from convllava.cli.main import main

    assert main(["convert", str(original["ckpt"]), str(tmp_path / "ours")]) == 0
    assert (tmp_path / "ours" / "model.safetensors").is_file()
    assert main(["export", "--format", "llava", str(tmp_path / "ours"), str(tmp_path / "theirs")]) == 0
    assert (tmp_path / "theirs" / "vision_tower" / "preprocessor_config.json").is_file()
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "again")]) == 2  # already ours: a clear error
    assert "not an original" in capsys.readouterr().err


def test_convllava_load_opens_original_and_converted_folders(original, tmp_path):
    import convllava

    model, processor = convllava.load(original["ckpt"], dtype="float32", device="cpu")
    assert isinstance(model, ConvLlavaForConditionalGeneration) and processor.template == "vicuna_v1"
    convert_checkpoint(original["ckpt"], tmp_path / "ours")
    loaded = convllava.load(tmp_path / "ours")
    assert torch.equal(loaded.model.lm_head.weight, model.lm_head.weight)
    assert loaded.processor.image_token_id == processor.image_token_id
