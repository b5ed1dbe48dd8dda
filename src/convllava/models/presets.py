"""presets.py

Named model presets, registered by exact name: the published ConvLLaVA architectures and a tiny one of
the same shape for tests and demos. A preset is a function returning a fresh `ConvLlavaConfig`.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import ConvNextConfig, LlamaConfig

from .configuration_convllava import ConvLlavaConfig


def convnext_large_5stage(image_size: int, stage5_depth: int = 6, stage5_width: int = 3072) -> ConvNextConfig:
    """ConvNeXt-L (3/3/27/3, 192..1536) + the added 5th stage, as `ConvLLaVA/ConvLLaVA-ConvNeXt-*` ships it."""
    return ConvNextConfig(
        depths=[3, 3, 27, 3, stage5_depth],
        hidden_sizes=[192, 384, 768, 1536, stage5_width],
        num_stages=5,
        patch_size=4,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        layer_scale_init_value=1e-6,
        drop_path_rate=0.0,
        image_size=image_size,
    )


def vicuna_7b_v15() -> LlamaConfig:
    """`lmsys/vicuna-7b-v1.5` (Llama-2-7B shape), as in the released ConvLLaVA config.json."""
    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )


def _published(image_size: int) -> Callable[[], ConvLlavaConfig]:
    def build() -> ConvLlavaConfig:
        return ConvLlavaConfig(
            vision_config=convnext_large_5stage(image_size),
            text_config=vicuna_7b_v15(),
            projector_type="mlp2x_gelu",
            image_token_id=32000,  # outside the 32000-token vocabulary: a sentinel, like the original -200
            image_size=image_size,
            image_resize_mode="pad",
        )

    return build


#: Vocabulary of `convllava-tiny`; the image token is the next id (TINY_VOCAB_SIZE), outside the vocabulary.
TINY_VOCAB_SIZE = 512


def convllava_tiny() -> ConvLlavaConfig:
    """A few-million-parameter model of the published shape: 5-stage ConvNeXt (stride 64) + MLP + Llama.

    256 px -> 4 x 4 = 16 visual tokens.
    """
    return ConvLlavaConfig(
        vision_config=ConvNextConfig(
            depths=[1, 1, 3, 1, 2],
            hidden_sizes=[24, 48, 96, 192, 384],
            num_stages=5,
            layer_norm_eps=1e-12,
            layer_scale_init_value=1e-6,
            image_size=256,
        ),
        text_config=LlamaConfig(
            vocab_size=TINY_VOCAB_SIZE,
            hidden_size=256,
            intermediate_size=688,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            rms_norm_eps=1e-5,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            tie_word_embeddings=False,
        ),
        projector_type="mlp2x_gelu",
        image_token_id=TINY_VOCAB_SIZE,
        image_size=256,
        image_resize_mode="pad",
    )


def convllava_tiny_4stage() -> ConvLlavaConfig:
    """`convllava-tiny` without the 5th stage (stride 32) at 128 px: the same 4 x 4 = 16 visual tokens, for the
    demo's resolution ablation (the 4-stage tower sees a 4x smaller image)."""
    config = convllava_tiny()
    config.vision_config = ConvNextConfig(
        depths=[1, 1, 3, 1], hidden_sizes=[24, 48, 96, 192], num_stages=4, layer_norm_eps=1e-12,
        layer_scale_init_value=1e-6, image_size=128,
    )  # fmt: skip
    config.image_size = 128
    return config


#: Exact-name registry of presets.
PRESETS: dict[str, Callable[[], ConvLlavaConfig]] = {
    "convllava-768": _published(768),
    "convllava-1024": _published(1024),
    "convllava-1536": _published(1536),
    "convllava-tiny": convllava_tiny,
    "convllava-tiny-4stage": convllava_tiny_4stage,
}


def get_preset(name: str) -> ConvLlavaConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}") from None
