"""configuration_convllava.py

`ConvLlavaConfig`: the one place that describes a ConvLLaVA model -- vision tower (type + config),
projector, language model and the image-token / image-size contract shared with the processor.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, ConvNextConfig, PretrainedConfig

from .projectors import get_projector_spec
from .sub_configs import as_config
from .vision.dense import check_dense_connector, default_groups
from .vision.fused import DinoSiglipVisionConfig

IMAGE_RESIZE_MODES: tuple[str, ...] = ("pad", "resize", "native", "anyres")
#: The modes that give every image one size (`image_size` square), hence one visual-token grid.
FIXED_SIZE_MODES: tuple[str, ...] = ("pad", "resize")


def tower_stride(vision_config: PretrainedConfig) -> int:
    """Total spatial down-sampling of a vision tower: a ConvNeXt's stem times 2 per later stage, a ViT's patch."""
    if isinstance(vision_config, ConvNextConfig):
        return vision_config.patch_size * 2 ** (vision_config.num_stages - 1)
    return int(vision_config.patch_size)


def check_image_size(
    vision_config: PretrainedConfig, image_size: int, name: str = "the ConvNeXt tower", resize_mode: str = "pad"
) -> None:
    """Raise unless `image_size` is positive and, for a ConvNeXt tower, a multiple of its stride (64 with 5
    stages): its strided convolutions would silently drop the border. Not in `native` mode, which rounds each side
    of every image to the stride itself; a ViT checks its own patch size."""
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    stride = tower_stride(vision_config)
    if isinstance(vision_config, ConvNextConfig) and resize_mode != "native" and image_size % stride:
        raise ValueError(
            f"image_size={image_size} is not a multiple of {name}'s vision stride {stride}: the tower would drop "
            f"the border; use {max(1, round(image_size / stride)) * stride}"
        )


class ConvLlavaConfig(PretrainedConfig):
    r"""Configuration of a ConvLLaVA model.

    Args:
        vision_config: config of the vision tower (a `ConvNextConfig` for `vision_tower_type="convnext"`).
        text_config: config of any Hugging Face causal LM (`LlamaConfig` for Vicuna).
        vision_tower_type: key of `convllava.models.vision.VISION_TOWERS` (`convnext`, `clip`, `siglip`, `dinov2`,
            `dinosiglip`: prismatic's fused DINOv2 + SigLIP, with a `DinoSiglipVisionConfig`).
        vision_feature_layer: hidden state the tower returns (ConvNeXt: -1 only; CLIP / LLaVA-1.5: -2; prismatic's
            SigLIP / DINOv2: -2).
        vision_feature_select: `patch` (drop a ViT's CLS token, LLaVA's default) or `cls_patch`.
        dense_connector: the Dense Connector on a ViT tower: `dci` or `sci` (vision/dense.py), or None. The selected
            layer's tokens get the means of groups of earlier hidden states concatenated on the channels.
        dense_connector_groups: the hidden-state indices each group averages (0 = the embeddings); None for the
            original's choice (`sci`: [[7], [15]]; `dci`: the first and second half of the tower's layers).
        projector_type: key of `convllava.models.projectors` (`linear`, `mlp{k}x_gelu`, `identity`, `norm_mlp2x_gelu`,
            `norm_pos_mlp2x_gelu`, `mlp{k}x_res{m}x_gelu`, `pooler`, `ldpnet`, `ldpnetv2`, `spp_v{1,2,3}`, `minigpt`,
            `vanilla`, `pixel_shuffle{2,3,4}x`, `resampler`, `resampler_q{q}_l{l}`,
            `fused_gelu_mlp`, `fused_ldpnet`, `c_abstractor`, `c_abstractor_q{q}`).
        image_token_id: id the processor writes for each visual token. It may lie outside the LM vocabulary
            (the published 7B checkpoints keep their 32000-row embedding; id 32000 is a sentinel).
        image_size: side S the image processor resizes to (768 / 1024 / 1536 for the published models).
        image_resize_mode: `pad` (the original: pad to square, resize to S), `resize` (squash to S x S),
            `native` (short side S, aspect kept, sides rounded to the tower's stride) or `anyres` (LLaVA-1.6:
            a base S x S tile plus a grid of S x S tiles, merged with `spatial_unpad` and a learned newline).
        image_grid_pinpoints: for `anyres`, the (height, width) resolutions a tile grid may take, each a multiple
            of S (LLaVA-1.6: [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]).
    """

    model_type = "convllava"
    sub_configs = {"text_config": AutoConfig, "vision_config": AutoConfig}

    vision_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    vision_tower_type: str = "convnext"
    vision_feature_layer: int = -1
    vision_feature_select: str = "patch"
    dense_connector: str | None = None
    dense_connector_groups: list[list[int]] | None = None
    projector_type: str = "mlp2x_gelu"
    image_token_id: int = 32000
    image_size: int = 768
    image_resize_mode: str = "pad"
    image_grid_pinpoints: list[list[int]] | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        self.vision_config = as_config(self.vision_config, "convnext")
        self.text_config = as_config(self.text_config, "llama")
        if self.image_resize_mode not in IMAGE_RESIZE_MODES:
            raise ValueError(
                f"image_resize_mode={self.image_resize_mode!r} is not one of {IMAGE_RESIZE_MODES}; "
                "use 'pad' for the published checkpoints."
            )
        check_dense_connector(self.dense_connector)
        if self.dense_connector_groups is not None and self.dense_connector is None:
            raise ValueError("dense_connector_groups is set but dense_connector is None: name the form, 'dci' or 'sci'")
        if self.dense_connector is not None and isinstance(self.vision_config, ConvNextConfig | DinoSiglipVisionConfig):
            raise ValueError(
                "the dense connector integrates the hidden states of one ViT tower (clip, siglip, dinov2); a ConvNeXt's "
                "stages differ in grid and width, and a fused tower has two: set dense_connector=None"
            )
        self.check_image_size(self.image_size)
        if self.image_resize_mode == "anyres":
            pinpoints = self.image_grid_pinpoints or []
            if not pinpoints or any(len(p) != 2 or p[0] % self.image_size or p[1] % self.image_size for p in pinpoints):
                raise ValueError(
                    f"image_resize_mode='anyres' needs image_grid_pinpoints: (height, width) pairs, each a multiple of "
                    f"image_size={self.image_size}; got {self.image_grid_pinpoints!r}"
                )
            if not get_projector_spec(self.projector_type).keeps_grid(self.image_size // self.vision_stride):
                raise ValueError(
                    f"image_resize_mode='anyres' lays each tile's tokens out on the tower's grid, so it needs a "
                    f"token-preserving projector (mlp2x_gelu, linear, ...), not {self.projector_type!r}"
                )
        super().__post_init__(**kwargs)

    def require_fixed_size(self, user: str, fix: str) -> None:
        """Raise unless every image has one size (`image_size` square), hence one visual-token grid: what
        precomputed tower outputs (`user`) need. `fix` says what to do instead."""
        if self.image_resize_mode not in FIXED_SIZE_MODES:
            raise ValueError(
                f"{user}: every image must have one size, and image_resize_mode={self.image_resize_mode!r} gives each "
                f"image its own: {fix}"
            )

    def check_image_size(self, image_size: int, name: str = "the ConvNeXt tower") -> None:
        """`check_image_size` for this config's tower and resize mode."""
        check_image_size(self.vision_config, image_size, name, self.image_resize_mode)

    @property
    def vision_stride(self) -> int:
        """Total spatial down-sampling of the vision tower (64 for the 5-stage ConvNeXt)."""
        return tower_stride(self.vision_config)

    @property
    def vision_hidden_size(self) -> int:
        """Channels of the feature the projector receives (3072 for ConvNeXt-L + stage 5; a dense connector's
        ViT: its width times 1 + its groups)."""
        vc = self.vision_config
        if isinstance(vc, ConvNextConfig):
            return vc.hidden_sizes[vc.num_stages - 1]
        if isinstance(vc, DinoSiglipVisionConfig):
            return vc.fused_hidden_size
        return int(vc.hidden_size) * (1 + len(self.dense_groups))

    @property
    def dense_groups(self) -> list[list[int]]:
        """The dense connector's groups of hidden-state indices ([] without one)."""
        if self.dense_connector is None:
            return []
        return self.dense_connector_groups or default_groups(self.dense_connector, self.vision_config.num_hidden_layers)
