"""Config, presets and `convllava info` numbers for the published architectures."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, ConvNextConfig, LlamaConfig

from convllava import PRESETS, ConvLlavaConfig, get_preset
from convllava.cli.info import model_info


@pytest.mark.parametrize(
    ("preset", "tokens"), [("convllava-768", 144), ("convllava-1024", 256), ("convllava-1536", 576)]
)
def test_published_presets_visual_tokens_and_sizes(preset, tokens):
    info = model_info(get_preset(preset))
    assert info["visual_tokens"] == tokens
    assert info["vision_hidden_sizes"] == [192, 384, 768, 1536, 3072]
    assert info["vision_depths"] == [3, 3, 27, 3, 6]
    assert round(info["vision_params"] / 1e6, 1) == 669.2
    assert info["projector_params"] == 3072 * 4096 + 4096 + 4096 * 4096 + 4096  # 29.37M
    assert round(info["language_params"] / 1e9, 3) == 6.738  # Vicuna-7B-v1.5
    assert info["total_params"] == info["vision_params"] + info["projector_params"] + info["language_params"]


def test_image_size_override_scales_tokens_linearly_in_area():
    assert model_info(get_preset("convllava-1536"), image_size=2048)["visual_tokens"] == 1024
    assert model_info(get_preset("convllava-1536"), image_size=768)["visual_tokens"] == 144


def test_tiny_preset_is_a_few_million_params_of_the_same_shape():
    info = model_info(get_preset("convllava-tiny"))
    assert 1e6 < info["total_params"] < 10e6
    assert info["vision_stride"] == 64 and len(info["vision_hidden_sizes"]) == 5
    assert info["visual_tokens"] == (256 // 64) ** 2


def test_config_round_trip(tmp_path):
    config = get_preset("convllava-tiny")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, ConvLlavaConfig)
    assert isinstance(loaded.vision_config, ConvNextConfig) and isinstance(loaded.text_config, LlamaConfig)
    assert loaded.vision_config.num_stages == 5 and loaded.vision_config.depths == config.vision_config.depths
    assert loaded.to_diff_dict() == config.to_diff_dict()


def test_config_accepts_dict_sub_configs():
    config = ConvLlavaConfig(
        vision_config={
            "model_type": "convnext",
            "num_stages": 5,
            "depths": [1] * 5,
            "hidden_sizes": [8, 16, 32, 64, 128],
        },
        text_config={"model_type": "llama", "hidden_size": 64},
    )
    assert config.vision_stride == 64 and config.vision_hidden_size == 128
    assert config.text_config.hidden_size == 64


def test_bad_resize_mode_is_rejected():
    with pytest.raises(ValueError, match="image_resize_mode"):
        ConvLlavaConfig(image_resize_mode="crop")


def test_convnext_image_size_must_be_a_multiple_of_the_stride_unless_native():
    vision = {"model_type": "convnext", "num_stages": 5, "depths": [1] * 5, "hidden_sizes": [8, 16, 32, 64, 128]}
    for mode in ("pad", "resize"):  # 800 px through stride 64: 12.5 tokens a side, the border dropped
        with pytest.raises(ValueError, match=r"image_size=800 is not a multiple of .* stride 64: .* use 768"):
            ConvLlavaConfig(vision_config=vision, image_size=800, image_resize_mode=mode)
    # native mode rounds each side of every image to the stride itself, so its short side may be anything
    assert ConvLlavaConfig(vision_config=vision, image_size=800, image_resize_mode="native").image_size == 800
    assert ConvLlavaConfig(vision_config=vision, image_size=832).image_size == 832


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match="convllava-1536"):
        get_preset("convllava-999")
    assert set(PRESETS) >= {"convllava-768", "convllava-1024", "convllava-1536", "convllava-tiny"}
