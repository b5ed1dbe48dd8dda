"""The Dense Connector on the ViT towers: features against the original's formula on transformers' hidden
states, the original fork's checkpoints (load, convert, export), a whole model, and the errors."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

from convllava import ConvLlavaConfig, ConvLlavaForConditionalGeneration
from convllava.models.vision import ClipVisionTower, SiglipVisionTower
from convllava.models.vision.dense import default_groups
from convllava.models.zoo import convert_checkpoint, export_checkpoint, load_original
from convllava.models.zoo.original import export_original
from test_zoo_llava15 import _check, build_llava15

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
         "image_size": 56, "patch_size": 14}  # fmt: skip


def _dense(states, feature, groups, drop):  # the original's dense_connector_dci / _sci, for any groups
    means = [torch.stack([states[i][:, drop:] for i in g]).sum(0) / len(g) for g in groups]
    return torch.cat([states[feature][:, drop:], *means], dim=-1)


def test_default_groups_are_the_originals():
    assert default_groups("dci", 24) == [list(range(12)), list(range(12, 24))]  # CLIP-L: 0-11, 12-23
    assert default_groups("dci", 26) == [list(range(13)), list(range(13, 26))]  # its 26-layer SigLIP
    assert default_groups("sci", 24) == [[7], [15]]


@pytest.mark.parametrize(("kind", "groups"), [("dci", None), ("sci", [[1], [3]])])
def test_clip_and_siglip_towers_integrate_hidden_state_means(kind, groups):
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 56, 56)
    clip = CLIPVisionModel(CLIPVisionConfig(**SMALL)).eval()
    tower = ClipVisionTower(CLIPVisionConfig(**SMALL), -2, "patch", kind, groups).eval()
    tower.load_state_dict({k.removeprefix("vision_model."): v for k, v in clip.state_dict().items()}, strict=False)
    with torch.no_grad():
        states = clip(pixels, output_hidden_states=True).hidden_states
        expected = _dense(states, -2, groups or [[0, 1], [2, 3]], drop=1)  # CLS dropped, as the original does
        got = tower(pixels)
    assert got.shape == (2, 16, 96) and tower.hidden_size == 96
    assert torch.allclose(got, expected, atol=1e-5)

    siglip = SiglipVisionModel(SiglipVisionConfig(**SMALL)).eval()  # the original runs SigLIP less its last layer
    tower = SiglipVisionTower(SiglipVisionConfig(**SMALL), -1, "patch", kind, groups).eval()
    tower.load_state_dict(siglip.state_dict(), strict=False)
    with torch.no_grad():
        states = siglip(pixels, output_hidden_states=True).hidden_states
        assert torch.allclose(tower(pixels), _dense(states, -1, groups or [[0, 1], [2, 3]], drop=0), atol=1e-5)


def test_dense_connector_errors_name_the_fix():
    with pytest.raises(
        ValueError, match=r"\[7, 15\] are not computed.*0\.\.3"
    ):  # the original's sci layers 7, 15 on 4 layers
        ClipVisionTower(CLIPVisionConfig(**SMALL), -2, "patch", "sci")
    with pytest.raises(ValueError, match="vision_feature_select='patch'"):
        ClipVisionTower(CLIPVisionConfig(**SMALL), -2, "cls_patch", "dci")
    with pytest.raises(ValueError, match="'sti' appends pooled tokens"):
        ConvLlavaConfig(vision_config=CLIPVisionConfig(**SMALL), vision_tower_type="clip", dense_connector="sti")
    with pytest.raises(ValueError, match=r"ConvNeXt.*dense_connector=None"):
        ConvLlavaConfig(dense_connector="dci")
    custom = ConvLlavaConfig(vision_config=CLIPVisionConfig(**SMALL), vision_tower_type="clip", vision_feature_layer=-2,
                             dense_connector="sci", dense_connector_groups=[[1], [3]])  # fmt: skip
    assert custom.vision_hidden_size == 96
    with pytest.raises(ValueError, match="fixed layers; keep this model in the convllava format"):
        export_original(custom, {})
    with pytest.raises(ValueError, match="dense_connector is None"):
        ConvLlavaConfig(vision_config=CLIPVisionConfig(**SMALL), vision_tower_type="clip",
                        dense_connector_groups=[[1]])  # fmt: skip


def test_a_whole_dense_connector_model(tiny_config, tmp_path):
    config = ConvLlavaConfig(vision_config=CLIPVisionConfig(**SMALL), text_config=tiny_config.text_config,
                             vision_tower_type="clip", vision_feature_layer=-2, dense_connector="dci",
                             image_token_id=tiny_config.image_token_id, image_size=56)  # fmt: skip
    assert config.vision_hidden_size == 96 and config.dense_groups == [[0, 1], [2, 3]]
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    assert model.model.projector[0].in_features == 96
    model.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.config.dense_connector == "dci"
    ids = torch.tensor([[1, 5, *[config.image_token_id] * 16, 9, 12]])
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(
            model(input_ids=ids, pixel_values=pixels).logits, reloaded(input_ids=ids, pixel_values=pixels).logits
        )
        cached = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=6, do_sample=False)
        uncached = model.generate(
            input_ids=ids, pixel_values=pixels, max_new_tokens=6, do_sample=False, use_cache=False
        )
    assert torch.equal(cached, uncached)


def test_the_dense_connector_forks_checkpoints_load_convert_and_export(tmp_path):
    parts = build_llava15(tmp_path / "src", layers=4, dense="dci", dense_groups=[[0, 1], [2, 3]])
    model, processor = load_original(parts["ckpt"])
    assert model.config.dense_connector == "dci" and model.config.vision_hidden_size == 96
    _check(model, processor, parts)
    converted = convert_checkpoint(parts["ckpt"], tmp_path / "ours")
    exported = export_checkpoint(converted, tmp_path / "theirs")
    again, processor = load_original(exported)
    assert again.config.dense_connector == "dci"
    _check(again, processor, parts)


def test_stage1_assembles_a_dense_connector_model_and_presets_refuse_one(tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from convllava.models.assembly import assemble_from_parts
    from convllava.training.config import TrainConfig
    from convllava.training.runner import load_model_and_processor

    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(**SMALL)).eval()
    clip.save_pretrained(tmp_path / "tower")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                       num_attention_heads=4, num_key_value_heads=4))  # fmt: skip
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    model, _ = assemble_from_parts(str(tmp_path / "tower"), str(tmp_path / "llm"), dense_connector="dci", image_size=56)
    assert model.config.dense_groups == [[0, 1], [2, 3]] and model.model.projector[0].in_features == 96
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        expected = _dense(clip(pixels, output_hidden_states=True).hidden_states, -2, [[0, 1], [2, 3]], drop=1)
        assert torch.allclose(model.model.vision_tower.eval()(pixels), expected, atol=1e-5)
    with pytest.raises(ValueError, match="presets have ConvNeXt towers"):
        load_model_and_processor(
            TrainConfig(model="convllava-tiny", tokenizer=str(tmp_path / "llm"), dense_connector="dci")
        )


def test_the_dense_connector_forks_siglip_checkpoints_load_and_convert(tmp_path):
    """Its released models run SigLIP less the last layer: hidden state -2 of the whole model, and DCI over halves of
    the remaining layers (so400m: 0-12 and 13-25 of 26; here 5 layers, so 0-1 and 2-3 of 4)."""
    parts = build_llava15(tmp_path / "src", layers=5, dense="dci", dense_groups=[[0, 1], [2, 3]], siglip=True)
    model, processor = load_original(parts["ckpt"])
    config = model.config
    assert (config.vision_tower_type, config.vision_feature_layer, config.dense_groups) == (
        "siglip",
        -2,
        [[0, 1], [2, 3]],
    )
    assert processor.image_processor.image_mean == [0.5] * 3 and config.image_size == 56
    _check(model, processor, parts)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(convert_checkpoint(parts["ckpt"], tmp_path / "ours"))
    _check(reloaded, processor, parts)
