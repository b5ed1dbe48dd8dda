"""SigLIP and DINOv2 towers: numerics against transformers' own models (hidden_states[k]), key names, feature
selection and grids, and a whole ConvLlava model on each."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from convllava import ConvLlavaConfig, ConvLlavaForConditionalGeneration
from convllava.models.vision import Dinov2VisionTower, SiglipVisionTower
from convllava.models.zoo.original import export_original

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
         "image_size": 56, "patch_size": 14}  # fmt: skip


def _reference(model_class, config):
    torch.manual_seed(0)
    model = model_class(config).eval()
    with torch.no_grad():  # layer scales and norms away from their init, so a skipped one would show
        for name, p in model.named_parameters():
            if "lambda" in name or "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _load(tower, reference_state):
    # a hub SiglipModel checkpoint names them `vision_model.*`; transformers' SiglipVisionModel has no prefix in 5.x
    state = {k.removeprefix("vision_model."): v for k, v in reference_state.items()}
    missing, unexpected = tower.load_state_dict(state, strict=False)
    assert not missing  # every parameter of ours has the checkpoint's name
    return unexpected


def test_siglip_tower_equals_siglipvisionmodel_hidden_states():
    reference = _reference(SiglipVisionModel, SiglipVisionConfig(**SMALL))
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        hidden = reference(pixels, output_hidden_states=True).hidden_states
    for layer in (-1, -2, 1):
        tower = SiglipVisionTower(SiglipVisionConfig(**SMALL), feature_layer=layer).eval()
        unexpected = _load(tower, reference.state_dict())
        assert all(k.startswith(("post_layernorm.", "head.")) for k in unexpected)  # never run, never loaded
        with torch.no_grad():
            assert torch.allclose(tower(pixels), hidden[layer], atol=1e-5), layer
    assert tower.feature_grid(56, 84) == (4, 6) and tower.units is tower.encoder.layers
    with torch.no_grad():  # another size: interpolated position embeddings, as transformers does it
        big = torch.randn(1, 3, 84, 84)
        expected = reference(big, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states[1]
        assert torch.allclose(tower(big), expected, atol=1e-5)
    with pytest.raises(ValueError, match="cls_patch"):
        SiglipVisionTower(SiglipVisionConfig(**SMALL), select="cls_patch")  # SigLIP has no CLS token
    with pytest.raises(ValueError, match="out of range"):
        SiglipVisionTower(SiglipVisionConfig(**SMALL), feature_layer=4)


@pytest.mark.parametrize(("config_class", "model_class", "extra"), [(Dinov2Config, Dinov2Model, 0),
                         (Dinov2WithRegistersConfig, Dinov2WithRegistersModel, 4)])  # fmt: skip
def test_dinov2_tower_drops_cls_and_registers_and_equals_the_model(config_class, model_class, extra):
    kwargs = {**SMALL, **({"num_register_tokens": extra} if extra else {})}
    reference = _reference(model_class, config_class(**kwargs))
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        hidden = reference(pixels, output_hidden_states=True).hidden_states
    for layer, select in ((-2, "patch"), (-1, "cls_patch")):
        tower = Dinov2VisionTower(config_class(**kwargs), feature_layer=layer, select=select).eval()
        unexpected = _load(tower, reference.state_dict())
        assert all(k.startswith(("layernorm.", "pooler.")) for k in unexpected)
        with torch.no_grad():
            got = tower(pixels)
        patches = hidden[layer][:, 1 + extra :]
        assert got.shape[1] == 16 + (select == "cls_patch")
        expected = patches if select == "patch" else torch.cat([hidden[layer][:, :1], patches], 1)
        assert torch.allclose(got, expected, atol=1e-5), (layer, select)


@pytest.mark.parametrize("tower_type", ["siglip", "dinov2"])
def test_a_whole_model_on_each_vit_tower(tiny_config, processor, tower_type, tmp_path):
    vision = (SiglipVisionConfig if tower_type == "siglip" else Dinov2Config)(**SMALL)
    config = ConvLlavaConfig(vision_config=vision, text_config=tiny_config.text_config, vision_tower_type=tower_type,
                             vision_feature_layer=-2, image_token_id=tiny_config.image_token_id, image_size=56,
                             projector_type="pooler")  # fmt: skip
    assert config.vision_stride == 14 and config.vision_hidden_size == 32
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    assert model.model.num_image_tokens(56, 56) == 4  # a 4 x 4 patch grid, pooled 2 x 2
    if tower_type == "dinov2":  # initialised as transformers does, not left at torch.randn's unit scale
        assert model.model.vision_tower.embeddings.position_embeddings.std() < 0.05
    model.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.config.vision_tower_type == tower_type
    assert type(reloaded.config.vision_config) is type(vision)
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixels)[0], reloaded.get_image_features(pixels)[0])
    with pytest.raises(ValueError, match=f"vision_tower_type '{tower_type}'.*convllava format"):
        export_original(config, model.state_dict())


@pytest.mark.parametrize("kind", ["clip", "siglip", "dinov2"])
def test_stage1_assembles_a_vit_tower_and_a_causal_lm(kind, tokenizer, tmp_path):
    from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

    from convllava import ConvLlavaProcessor
    from convllava.models.assembly import assemble_from_parts, tower_image_stats

    torch.manual_seed(0)
    if kind == "clip":  # a whole CLIPModel, as openai/clip-vit-large-patch14-336 ships
        source = CLIPModel(CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                                   "num_attention_heads": 2}, vision_config=SMALL, projection_dim=8))  # fmt: skip
        reference = source.vision_model
    else:
        source = (
            SiglipVisionModel(SiglipVisionConfig(**SMALL)) if kind == "siglip" else Dinov2Model(Dinov2Config(**SMALL))
        )
        reference = source
    source.save_pretrained(tmp_path / "tower")
    (tmp_path / "tower" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=4))  # fmt: skip
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    model, tok = assemble_from_parts(str(tmp_path / "tower"), str(tmp_path / "llm"), image_size=84)  # 56 px trained
    assert model.config.vision_tower_type == kind and model.config.vision_feature_layer == -2
    assert model.config.vision_stride == 14 and model.model.num_image_tokens(84, 84) == 36
    pixels = torch.randn(1, 3, 84, 84)
    with torch.no_grad():
        kwargs = {} if kind == "dinov2" else {"interpolate_pos_encoding": True}
        hidden = reference.eval()(pixels, output_hidden_states=True, **kwargs).hidden_states[-2]
        expected = hidden[:, 1:] if kind != "siglip" else hidden  # CLIP / DINOv2: drop CLS
        assert torch.allclose(model.model.vision_tower.eval()(pixels), expected, atol=1e-5)
    assert tower_image_stats(str(tmp_path / "tower")) == {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    processor = ConvLlavaProcessor.from_model_config(model.config, tok, **tower_image_stats(str(tmp_path / "tower")))
    assert processor.image_processor.image_mean == [0.5] * 3
    with pytest.raises(ValueError, match="multiple of"):
        assemble_from_parts(str(tmp_path / "tower"), str(tmp_path / "llm"), image_size=80)
