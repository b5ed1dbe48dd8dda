"""modeling_convllava.py

`ConvLlavaModel` (vision tower + projector + any Hugging Face decoder, no LM head) and
`ConvLlavaForConditionalGeneration` (adds the LM head, loss and `generate()`).

Images enter the sequence HF-style: the processor writes N copies of `config.image_token_id` per image
and the model scatters the N projected features into those positions (`masked_scatter`), so labels and
attention masks keep their length and left-padded batched generation works unchanged. The image token id
may lie outside the LM vocabulary: it is replaced by 0 before the embedding lookup, which lets the
published 7B checkpoints keep their 32000-row embedding.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings
from transformers.models.convnext.modeling_convnext import ConvNextLayer
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings
from transformers.models.dinov2_with_registers.modeling_dinov2_with_registers import Dinov2WithRegistersEmbeddings
from transformers.models.siglip.modeling_siglip import SiglipVisionEmbeddings

from ..constants import IGNORE_INDEX
from .anyres import anyres_token_count, merge_anyres, tile_grid
from .c_abstractor import CAbstractor
from .configuration_convllava import ConvLlavaConfig
from .outputs import CACHE_FIELD, ConvLlavaCausalLMOutputWithPast, ConvLlavaModelOutputWithPast
from .projectors import build_projector, get_projector_spec
from .resampler import PerceiverResampler
from .vision import DinoSiglipVisionTower, build_vision_tower

logger = logging.getLogger(__name__)


class ConvLlavaPreTrainedModel(PreTrainedModel):
    config_class = ConvLlavaConfig
    config: ConvLlavaConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["ConvNextLayer", "CLIPEncoderLayer"]
    _skip_keys_device_placement = [CACHE_FIELD]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ConvNextLayer) and module.layer_scale_parameter is not None:
            init.constant_(module.layer_scale_parameter, self.config.vision_config.layer_scale_init_value)
        elif isinstance(module, CLIPVisionEmbeddings | SiglipVisionEmbeddings):
            if isinstance(module, CLIPVisionEmbeddings):
                init.normal_(module.class_embedding, std=module.embed_dim**-0.5)
            # a non-persistent buffer: never in a checkpoint, so it must be rebuilt after a meta-device load
            init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
        elif isinstance(module, Dinov2Embeddings | Dinov2WithRegistersEmbeddings):  # as Dinov2PreTrainedModel does
            std = module.config.initializer_range  # its own config: the fused tower holds two
            init.trunc_normal_(module.position_embeddings, std=std)
            init.trunc_normal_(module.cls_token, std=std)
            init.zeros_(module.mask_token)
            if isinstance(module, Dinov2WithRegistersEmbeddings):
                init.zeros_(module.register_tokens)
        elif isinstance(module, DinoSiglipVisionTower):  # non-persistent buffers: rebuilt after a meta-device load
            for name, value in module.normalisation().items():
                init.copy_(getattr(module, name), value)
        elif isinstance(module, PerceiverResampler):  # torch.randn, as TinyLLaVA builds them
            init.normal_(module.latents)
        elif isinstance(module, CAbstractor):  # as Honeybee builds it
            init.trunc_normal_(module.pos_emb, std=0.02)
        elif isinstance(module, ConvLlavaModel) and module.image_newline is not None:
            init.normal_(module.image_newline, std=module.image_newline.shape[0] ** -0.5)  # as LLaVA-1.6 builds it


class ConvLlavaModel(ConvLlavaPreTrainedModel):
    """Vision tower -> projector -> splice into the decoder's input embeddings."""

    def __init__(self, config: ConvLlavaConfig) -> None:
        super().__init__(config)
        self.vision_tower = build_vision_tower(config)
        self.projector = build_projector(
            config.projector_type, config.vision_hidden_size, config.text_config.hidden_size,
            input_grid=self.vision_tower.feature_grid(config.image_size, config.image_size),
        )  # fmt: skip
        self.language_model = AutoModel.from_config(config.text_config)
        # LLaVA-1.6 (anyres): ends every row of the tile grid's features; the original's key `model.image_newline`
        anyres = config.image_resize_mode == "anyres"
        self.image_newline = nn.Parameter(torch.zeros(config.text_config.hidden_size)) if anyres else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def num_image_tokens(self, height: int, width: int) -> int:
        """Visual tokens the model emits for one image of height x width pixels."""
        if self.config.image_resize_mode == "anyres":  # height x width of the original image
            side = self.vision_tower.feature_grid(self.config.image_size, self.config.image_size)[0]
            return anyres_token_count(height, width, self.config.image_grid_pinpoints, self.config.image_size, side)
        grid_h, grid_w = self.vision_tower.feature_grid(height, width)
        return get_projector_spec(self.config.projector_type).num_tokens(grid_h, grid_w)

    def get_image_features(
        self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Encode and project images; returns one (N_i, D) tensor per image, in input order.

        `pixel_values` is (num_images, 3, H, W). With `image_sizes` (num_images, 2) the images are padded to a
        common H, W (the processor's `native` mode); each is cropped back to its own size, and images of the
        same size are encoded together.
        """
        tower_param = next(self.vision_tower.parameters())
        pixel_values = pixel_values.to(device=tower_param.device, dtype=tower_param.dtype)
        if self.config.image_resize_mode == "anyres":
            return self._anyres_features(pixel_values, image_sizes)
        if image_sizes is None:
            return list(self._encode(pixel_values).unbind(0))
        sizes = [tuple(int(v) for v in hw) for hw in image_sizes.tolist()]
        if len(sizes) != pixel_values.shape[0]:
            raise ValueError(f"image_sizes has {len(sizes)} rows for {pixel_values.shape[0]} images")
        features: list[torch.Tensor | None] = [None] * len(sizes)
        for size in dict.fromkeys(sizes):
            index = [i for i, s in enumerate(sizes) if s == size]
            batch = pixel_values[index, :, : size[0], : size[1]]
            for i, feature in zip(index, self._encode(batch).unbind(0), strict=True):
                features[i] = feature
        return features  # type: ignore[return-value]

    def _anyres_features(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None) -> list[torch.Tensor]:
        """`pixel_values`: every image's tiles in order; `image_sizes`: each image's original (height, width)."""
        if image_sizes is None:
            raise ValueError("an anyres model needs image_sizes (each image's original height, width) with its tiles")
        size, pinpoints = self.config.image_size, self.config.image_grid_pinpoints
        sizes = [(int(h), int(w)) for h, w in image_sizes.tolist()]
        grids = [tile_grid(h, w, pinpoints, size) for h, w in sizes]
        counts = [1 + rows * cols for rows, cols in grids]
        if sum(counts) != pixel_values.shape[0]:
            raise ValueError(
                f"image_sizes {sizes} call for {sum(counts)} tiles, pixel_values holds {pixel_values.shape[0]}"
            )
        tiles = self._encode(pixel_values).split(counts)
        return [
            merge_anyres(t, h, w, grid, self.image_newline) for t, (h, w), grid in zip(tiles, sizes, grids, strict=True)
        ]

    def project_vision_features(self, vision_features: torch.Tensor) -> list[torch.Tensor]:
        """Project precomputed vision-tower outputs, (num_images, N, C) of `image_size` square images (a frozen
        tower's cache, `cache_vision_features` in training); one (N', D) tensor per image, as `get_image_features`."""
        self.config.require_fixed_size("vision_features", "pass pixel_values instead")
        grid = self.vision_tower.feature_grid(self.config.image_size, self.config.image_size)
        if vision_features.dim() != 3 or vision_features.shape[1] != grid[0] * grid[1]:
            raise ValueError(
                f"vision_features should be (num_images, {grid[0] * grid[1]}, channels), the tower's {grid[0]} x "
                f"{grid[1]} grid at {self.config.image_size} px; got {tuple(vision_features.shape)}"
            )
        param = next(self.projector.parameters())
        return list(self.projector(vision_features.to(param.device, param.dtype), grid=grid).unbind(0))

    def _encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        grid = self.vision_tower.feature_grid(*pixel_values.shape[-2:])
        return self.projector(self.vision_tower(pixel_values), grid=grid)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ConvLlavaModelOutputWithPast:
        """`vision_features`: the vision tower's outputs, precomputed, in place of `pixel_values`
        (`project_vision_features`). `kwargs` go to the language model, the KV cache among them (`cache`, or
        `past_key_values` before transformers 5.24: either name is taken and passed on under the installed
        version's)."""
        if pixel_values is not None and vision_features is not None:
            raise ValueError("pass pixel_values or vision_features (the tower's precomputed outputs), not both")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        image_features = None
        if inputs_embeds is None:
            image_mask = input_ids == self.config.image_token_id
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))
            if pixel_values is not None or vision_features is not None:
                if vision_features is not None:
                    features = self.project_vision_features(vision_features)
                else:
                    features = self.get_image_features(pixel_values, image_sizes)
                image_features = torch.cat(features).to(inputs_embeds.device, inputs_embeds.dtype)
                _check_image_token_count(image_mask, features)
                inputs_embeds = inputs_embeds.masked_scatter(image_mask.unsqueeze(-1), image_features)
            elif image_mask.any():
                raise ValueError(
                    f"input_ids contain {int(image_mask.sum())} image tokens (id {self.config.image_token_id}) "
                    "but no pixel_values were given; pass the images the prompt refers to."
                )
        elif pixel_values is not None or vision_features is not None:
            raise ValueError(
                "pixel_values / vision_features need input_ids (to find the image tokens); got inputs_embeds instead"
            )

        cache = kwargs.pop("cache", None)
        legacy = kwargs.pop("past_key_values", None)
        kwargs[CACHE_FIELD] = cache if cache is not None else legacy
        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        return ConvLlavaModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=image_features,
        )


def _check_image_token_count(image_mask: torch.Tensor, features: list[torch.Tensor]) -> None:
    n_tokens = int(image_mask.sum())
    per_image = [int(f.shape[0]) for f in features]
    if n_tokens != sum(per_image):
        raise ValueError(
            f"input_ids hold {n_tokens} image tokens but {len(per_image)} image(s) give {sum(per_image)} visual "
            f"features ({per_image} per image). Build inputs with ConvLlavaProcessor, which expands each <image> "
            "to the right number of tokens, and pass exactly one image per <image>."
        )


class ConvLlavaForConditionalGeneration(ConvLlavaPreTrainedModel, GenerationMixin):
    """ConvLLaVA with an LM head: `forward(..., labels)` gives the loss, `generate()` decodes with a KV cache."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: ConvLlavaConfig) -> None:
        super().__init__(config)
        self.model = ConvLlavaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Also opens original ConvLLaVA / LLaVA checkpoints (converted in memory; see `models.zoo`)."""
        from .zoo import load_original
        from .zoo.original import locate_original

        original = locate_original(pretrained_model_name_or_path) if pretrained_model_name_or_path else None
        if original is not None:
            return load_original(original, dtype=kwargs.get("dtype"))[0]
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def get_decoder(self) -> nn.Module:
        return self.model.language_model

    @property
    def vision_tower(self) -> nn.Module:
        return self.model.vision_tower

    @property
    def projector(self) -> nn.Module:
        return self.model.projector

    @property
    def language_model(self) -> nn.Module:
        return self.model.language_model

    def get_image_features(
        self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        return self.model.get_image_features(pixel_values, image_sizes)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        vision_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ConvLlavaCausalLMOutputWithPast:
        kwargs.pop("return_dict", None)
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            vision_features=vision_features,
            image_sizes=image_sizes,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])

        loss = None
        if labels is not None:
            if input_ids is not None:  # image positions never carry a loss, whatever the caller put there
                labels = labels.masked_fill(input_ids == self.config.image_token_id, IGNORE_INDEX)
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return ConvLlavaCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=outputs.image_hidden_states,
        )
