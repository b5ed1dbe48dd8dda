"""prismatic's fused DINOv2 + SigLIP tower: each branch normalised its own way and equal to transformers' models
(hidden_states[-2] patch tokens), concatenated on the channels; a whole model round-trips; its errors."""

from __future__ import annotations

import pytest
import torch
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel, SiglipVisionConfig, SiglipVisionModel

from convllava import ConvLlavaConfig, ConvLlavaForConditionalGeneration, ConvLlavaProcessor
from convllava.models.vision import DinoSiglipVisionConfig, DinoSiglipVisionTower
from convllava.training.lora import _fully_trainable_modules

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
         "image_size": 56, "patch_size": 14}  # fmt: skip


def _config(**extra):
    return DinoSiglipVisionConfig(
        dino_config=Dinov2WithRegistersConfig(num_register_tokens=4, **SMALL),
        siglip_config=SiglipVisionConfig(**{**SMALL, "hidden_size": 48}),
        **extra,
    )


def test_fused_tower_equals_both_models_each_with_its_own_normalisation():
    torch.manual_seed(0)
    config = _config()
    dino, siglip = Dinov2WithRegistersModel(config.dino_config).eval(), SiglipVisionModel(config.siglip_config).eval()
    tower = DinoSiglipVisionTower(config).eval()
    assert not tower.dino.load_state_dict(dino.state_dict(), strict=False).missing_keys
    siglip_state = {k.removeprefix("vision_model."): v for k, v in siglip.state_dict().items()}
    assert not tower.siglip.load_state_dict(siglip_state, strict=False).missing_keys
    pixels = torch.rand(2, 3, 56, 56)  # what the processor gives it: [0, 1], not normalised
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        d = dino((pixels - mean) / std, output_hidden_states=True).hidden_states[-2][:, 1 + 4 :]  # no CLS, registers
        s = siglip((pixels - 0.5) / 0.5, output_hidden_states=True).hidden_states[-2]
        got = tower(pixels)
    assert got.shape == (2, 16, 80) and tower.hidden_size == 80 and tower.feature_grid(56, 84) == (4, 6)
    assert torch.allclose(got, torch.cat([d, s], dim=-1), atol=1e-5)
    assert tower.unfreeze_stages(2) == [2]
    trainable = {n.split(".")[0] + "." + n.split(".")[3] for n, p in tower.named_parameters() if p.requires_grad}
    assert trainable == {"dino.2", "siglip.2"}  # the last layer of each branch, nothing else


def test_a_whole_fused_model_round_trips_and_generates(tokenizer, tmp_path):
    config = ConvLlavaConfig(vision_config=_config(), vision_tower_type="dinosiglip", vision_feature_layer=-2,
                             projector_type="fused_gelu_mlp", image_size=56, image_resize_mode="resize",
                             text_config={"model_type": "llama", "vocab_size": 600, "hidden_size": 64,
                                          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                                          "num_key_value_heads": 4},
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"))  # fmt: skip
    assert config.vision_stride == 14 and config.vision_hidden_size == 80
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    processor = ConvLlavaProcessor.from_model_config(config, tokenizer)
    assert processor.image_processor.image_mean == [0.0] * 3 and processor.image_processor.image_std == [1.0] * 3
    from helpers import random_image

    inputs = processor(text=["USER: <image>\nWhat is it? ASSISTANT:"], images=[random_image(70, 40, seed=1)])
    assert (inputs["input_ids"] == config.image_token_id).sum() == 16
    assert 0.0 <= float(inputs["pixel_values"].min()) and float(inputs["pixel_values"].max()) <= 1.0
    with torch.no_grad():
        cached = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        assert torch.equal(cached, model.generate(**inputs, max_new_tokens=5, do_sample=False, use_cache=False))
    model.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert type(reloaded.config.vision_config) is DinoSiglipVisionConfig
    assert type(reloaded.config.vision_config.dino_config) is Dinov2WithRegistersConfig
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reloaded(**inputs).logits, atol=1e-6)
    model.model.vision_tower.unfreeze_stages(2)  # LoRA saves the trainable layers of both branches fully
    assert [n for n in _fully_trainable_modules(model) if "vision_tower" in n] == [
        "model.vision_tower.dino.encoder.layer.2", "model.vision_tower.siglip.encoder.layers.2"]  # fmt: skip


def test_fused_tower_errors_name_the_fix():
    with pytest.raises(ValueError, match="one patch grid"):
        DinoSiglipVisionConfig(dino_config=Dinov2WithRegistersConfig(patch_size=14),
                               siglip_config=SiglipVisionConfig(patch_size=16))  # fmt: skip
    with pytest.raises(ValueError, match="a fused tower has two"):
        ConvLlavaConfig(vision_config=_config(), vision_tower_type="dinosiglip", dense_connector="dci")
    with pytest.raises(ValueError, match="out of range"):
        DinoSiglipVisionTower(_config()).unfreeze_stages(3)


def test_stage1_assembles_a_fused_tower_from_two_checkpoints(tokenizer, tmp_path):
    import json

    from transformers import LlamaConfig, LlamaForCausalLM

    from convllava.models.assembly import assemble_from_parts

    torch.manual_seed(0)
    config = _config()
    dino, siglip = Dinov2WithRegistersModel(config.dino_config).eval(), SiglipVisionModel(config.siglip_config).eval()
    dino.save_pretrained(tmp_path / "dino")
    siglip.save_pretrained(tmp_path / "siglip")
    (tmp_path / "siglip" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                       num_attention_heads=4, num_key_value_heads=4))  # fmt: skip
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    model, _ = assemble_from_parts(f"{tmp_path / 'siglip'}+{tmp_path / 'dino'}", str(tmp_path / "llm"),
                                   projector_type="fused_gelu_mlp", image_size=56)  # fmt: skip
    assert model.config.vision_tower_type == "dinosiglip" and model.config.vision_hidden_size == 80
    assert model.config.vision_config.siglip_mean == [0.5] * 3  # from its preprocessor_config.json
    pixels = torch.rand(1, 3, 56, 56)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        d = dino((pixels - mean) / std, output_hidden_states=True).hidden_states[-2][:, 5:]
        s = siglip((pixels - 0.5) / 0.5, output_hidden_states=True).hidden_states[-2]
        assert torch.allclose(model.model.vision_tower.eval()(pixels), torch.cat([d, s], -1), atol=1e-5)
    with pytest.raises(ValueError, match="one DINOv2 and one SigLIP"):
        assemble_from_parts(f"{tmp_path / 'siglip'}+{tmp_path / 'siglip'}", str(tmp_path / "llm"), image_size=56)
