"""LLaVA-1.5 checkpoints (CLIP ViT tower, feature layer -2, patch tokens): load, convert, export, against a
reference forward built from transformers' own CLIPVisionModel and LlamaForCausalLM."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    SiglipConfig,
    SiglipModel,
)

from conftest import CORPUS
from convllava import ConvLlavaForConditionalGeneration
from convllava.models.zoo import convert_checkpoint, export_checkpoint, load_original
from convllava.processing import get_template, train_tokenizer
from helpers import random_image
from test_zoo import tokenizer_image_token

SIZE, PATCH = 56, 14


@pytest.fixture(scope="module")
def llava15(tmp_path_factory):
    return build_llava15(tmp_path_factory.mktemp("llava15"))


def build_llava15(root, layers=3, dense=None, dense_groups=(), mistral=False, siglip=False):
    """An original LLaVA-1.5 checkpoint folder (CLIP + MLP + Llama) and its parts; `dense`: the Dense Connector
    fork's `mm_dense_connector_type`, whose features add the means of `dense_groups` of hidden states; `mistral`:
    LLaVA-1.6 Mistral's layout (`llava_mistral`, a Mistral LM); `siglip`: a SiglipModel tower folder, which the
    LLaVA-NeXT / Dense Connector code runs less its last layer (so hidden state -2 of the whole model)."""
    torch.manual_seed(2)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": layers, "num_attention_heads": 4,
              "image_size": SIZE, "patch_size": PATCH}  # fmt: skip
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
    tower = root / ("siglip" if siglip else "clip")
    if siglip:  # like google/siglip-so400m-patch14-384: text + vision, `size` only, mean / std 0.5
        SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(tower)
        pre = {"size": {"height": SIZE, "width": SIZE}, "resample": 3, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    else:  # like openai/clip-vit-large-patch14-336: text + vision
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tower)
        pre = {"crop_size": {"height": SIZE, "width": SIZE}, "size": {"shortest_edge": SIZE}, "resample": 3,
               "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}  # fmt: skip
    (tower / "preprocessor_config.json").write_text(json.dumps(pre))
    config_class, model_class = (MistralConfig, MistralForCausalLM) if mistral else (LlamaConfig, LlamaForCausalLM)
    llm_config = config_class(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    llm = model_class(llm_config).eval()
    mm_hidden = 32 * (1 + len(dense_groups))
    projector = nn.Sequential(nn.Linear(mm_hidden, 64), nn.GELU(), nn.Linear(64, 64))
    ckpt = root / "ckpt"
    ckpt.mkdir()
    state = {**llm.state_dict(), **{f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}}
    torch.save(state, ckpt / "pytorch_model.bin")
    (ckpt / "config.json").write_text(json.dumps({
        **llm_config.to_dict(), "architectures": ["LlavaMistralForCausalLM" if mistral else "LlavaLlamaForCausalLM"],
        "model_type": "llava_mistral" if mistral else "llava",
        "mm_vision_tower": str(tower), "mm_hidden_size": mm_hidden, "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad",
        **({"mm_dense_connector_type": dense} if dense else {})}))  # fmt: skip
    tokenizer = train_tokenizer(CORPUS * 20, vocab_size=512, image_token=False)
    tokenizer.save_pretrained(ckpt)
    vision = (SiglipModel if siglip else CLIPModel).from_pretrained(tower).vision_model.eval()
    return {
        "ckpt": ckpt,
        "vision": vision,
        "llm": llm,
        "projector": projector,
        "tokenizer": tokenizer,
        "dense_groups": dense_groups,
        "drop": 0 if siglip else 1,  # CLIP has a CLS token in front of the patches
    }


def reference_logits(parts, prompt, pixel_values):
    ids = tokenizer_image_token(prompt, parts["tokenizer"])
    with torch.no_grad():
        states = parts["vision"](pixel_values, output_hidden_states=True).hidden_states
        drop = parts["drop"]
        hidden = states[-2][:, drop:]
        for group in parts["dense_groups"]:  # the Dense Connector's channel integration, as its fork computes it
            hidden = torch.cat([hidden, torch.stack([states[i][:, drop:] for i in group]).sum(0) / len(group)], -1)
        features = parts["projector"](hidden)[0]
        at = ids.index(-200)
        embed = parts["llm"].model.embed_tokens
        embeds = torch.cat([embed(torch.tensor(ids[:at])), features, embed(torch.tensor(ids[at + 1 :]))])
        return parts["llm"](inputs_embeds=embeds[None]).logits[0]


def _check(model, processor, parts):
    prompt = processor.apply_chat_template([{"role": "user", "content": "<image>\nWhat color is the square?"}])
    image = random_image(70, 40, seed=3)
    inputs = processor(text=[prompt], images=[image])
    assert (inputs["input_ids"] == processor.image_token_id).sum() == (SIZE // PATCH) ** 2
    with torch.no_grad():
        ours = model(**inputs).logits[0]
    expected = reference_logits(parts, prompt, processor.image_processor(image)["pixel_values"])
    assert ours.shape == expected.shape and (ours - expected).abs().max() <= 1e-4


def test_llava15_loads_converts_and_exports_with_reference_numerics(llava15, tmp_path):
    model, processor = load_original(llava15["ckpt"])
    assert model.config.vision_tower_type == "clip" and model.config.vision_feature_layer == -2
    assert processor.template == "vicuna_v1"  # as LLaVA-1.5 was tuned (--version v1) and is scored (--conv-mode)
    assert get_template("vicuna_v1").system.startswith("A chat between a curious user")
    _check(model, processor, llava15)

    converted = convert_checkpoint(llava15["ckpt"], tmp_path / "ours")
    reloaded, processor = ConvLlavaForConditionalGeneration.from_pretrained(converted), None
    from convllava import ConvLlavaProcessor

    processor = ConvLlavaProcessor.from_pretrained(converted)
    _check(reloaded, processor, llava15)

    exported = export_checkpoint(converted, tmp_path / "theirs")
    vision_keys = torch.load(exported / "vision_tower" / "pytorch_model.bin", weights_only=True)
    assert all(k.startswith("vision_model.") for k in vision_keys)
    again, processor = load_original(exported)
    _check(again, processor, llava15)


def test_llava16_mistral_loads_with_its_template_and_exports_as_llava_mistral(tmp_path):
    parts = build_llava15(tmp_path / "src", mistral=True)
    model, processor = load_original(parts["ckpt"])
    assert model.config.text_config.model_type == "mistral" and processor.template == "mistral_instruct"
    assert (
        processor.apply_chat_template([{"role": "user", "content": "<image>\nWhat?"}])
        == "[INST] <image>\nWhat? [/INST]"
    )
    _check(model, processor, parts)
    exported = export_checkpoint(convert_checkpoint(parts["ckpt"], tmp_path / "ours"), tmp_path / "theirs")
    written = json.loads((exported / "config.json").read_text())
    assert (written["model_type"], written["architectures"]) == ("llava_mistral", ["LlavaMistralForCausalLM"])
    again, processor = load_original(exported)
    assert processor.template == "mistral_instruct"
    _check(again, processor, parts)
    import convllava

    assert convllava.load(exported, template="vicuna_v1").processor.template == "vicuna_v1"  # the caller's choice
    ours = convllava.load(tmp_path / "ours", template="chatml_direct").processor
    assert ours.template == "chatml_direct" and ours.apply_chat_template([{"role": "user", "content": "Hi"}]).endswith(
        "<|im_start|>user\nHi<|im_end|><|im_start|>assistant\n"
    )


def test_a_chatml_tokenizer_gets_chatml_direct(llava15):
    from convllava.models.zoo.loading import default_template

    model, processor = load_original(llava15["ckpt"])
    assert default_template(model.config, processor.tokenizer) == "vicuna_v1"
    processor.tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    assert default_template(model.config, processor.tokenizer) == "chatml_direct"  # LLaVA-1.6 34B's Yi tokenizer
