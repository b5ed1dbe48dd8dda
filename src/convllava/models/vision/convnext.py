"""convnext.py

The ConvNeXt vision tower of ConvLLaVA, built on `transformers.ConvNextModel`'s own modules.

It returns the raw output of the last stage (no final LayerNorm, no pooling) flattened row-major to
(B, N, C), exactly as `ConvNeXtCLIPVisionTower.forward` in the original code. Parameter names match
`ConvNextModel` (`embeddings.*`, `encoder.stages.*`) so original checkpoints load without renaming.
Also here: `add_convnext_stages` (the original `add_stage`), freezing by stage index, and gradient
checkpointing over every ConvNeXt block.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from transformers import ConvNextConfig
from transformers.models.convnext.modeling_convnext import ConvNextEmbeddings, ConvNextEncoder, ConvNextStage

from .base import StagedTower

logger = logging.getLogger(__name__)


class ConvNextVisionTower(StagedTower):
    """Stem + N ConvNeXt stages; `forward(pixel_values) -> (B, H/s * W/s, C_last)` with s = 4 * 2**(N-1).

    `unfreeze_stages(2)` is the paper's choice for vision-language pretraining ("stage 3", 1-indexed).
    """

    units_path = "encoder.stages"

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__()
        if len(config.depths) != config.num_stages or len(config.hidden_sizes) != config.num_stages:
            raise ValueError(
                f"ConvNextConfig has num_stages={config.num_stages} but depths={config.depths} and "
                f"hidden_sizes={config.hidden_sizes}; pass num_stages=len(depths) (ConvNextConfig builds 4 stages "
                "unless told otherwise)."
            )
        self.config = config
        self.embeddings = ConvNextEmbeddings(config)
        self.encoder = ConvNextEncoder(config)
        # Set by `PreTrainedModel.gradient_checkpointing_enable()` on the parent model.
        self.gradient_checkpointing = False
        self.channels_last = False
        self._gradient_checkpointing_func = torch.utils.checkpoint.checkpoint

    @property
    def stride(self) -> int:
        return self.config.patch_size * 2 ** (self.config.num_stages - 1)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_sizes[-1]

    @property
    def stages(self) -> nn.ModuleList:
        return self.encoder.stages

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        """Feature-map size for an input of height x width (floor division at every stride, as the convs do)."""
        h, w = height // self.config.patch_size, width // self.config.patch_size
        for _ in range(self.config.num_stages - 1):
            h, w = h // 2, w // 2
        return h, w

    def use_channels_last(self, enabled: bool = True) -> ConvNextVisionTower:
        """Run the convolutions in channels-last memory format (faster depthwise 7x7 convs on CPU and with
        cuDNN); the outputs are the same numbers (within float rounding)."""
        with torch.inference_mode(False), torch.no_grad():  # parameters must stay usable for training
            self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        self.channels_last = enabled
        return self

    def forward_feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/s, W/s): the raw last-stage residual stream."""
        if self.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        hidden = self.embeddings(pixel_values)
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for stage in self.encoder.stages:
            for layer in stage.downsampling_layer:
                hidden = layer(hidden)
            for block in stage.layers:
                hidden = self._gradient_checkpointing_func(block.__call__, hidden) if checkpointing else block(hidden)
        return hidden

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.forward_feature_map(pixel_values)
        batch, channels = features.shape[:2]
        return features.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def add_convnext_stages(
    tower: ConvNextVisionTower, depths: Sequence[int] = (6,), widths: Sequence[int] = (3072,)
) -> ConvNextVisionTower:
    """Append stages to a (pretrained) tower exactly as the original `add_stage` does.

    Each new stage is `ConvNextStage(config, C_prev, width, depth)`: LayerNorm + 2x2 stride-2 conv, then
    `depth` blocks, built with PyTorch's default init and layer-scale `config.layer_scale_init_value`
    (1e-6), so each new block starts near identity. The new parameters are trainable; the caller decides
    what else to freeze. The tower's config is updated in place (depths, hidden_sizes, num_stages,
    stage_names, out_features), so a parent model's `config.vision_config` that is the same object
    saves the new architecture.
    """
    if len(depths) != len(widths):
        raise ValueError(f"depths {list(depths)} and widths {list(widths)} must have the same length")
    config = tower.config
    for depth, width in zip(depths, widths, strict=True):
        stage = ConvNextStage(config, in_channels=config.hidden_sizes[-1], out_channels=width, depth=depth)
        param = next(tower.parameters())
        tower.encoder.stages.append(stage.to(device=param.device, dtype=param.dtype))
        config.depths = [*config.depths, depth]
        config.hidden_sizes = [*config.hidden_sizes, width]
        config.num_stages += 1
    config.stage_names = ["stem"] + [f"stage{i}" for i in range(1, config.num_stages + 1)]
    config.out_features = [config.stage_names[-1]]
    logger.info("added ConvNeXt stages depths=%s widths=%s -> %d stages", list(depths), list(widths), config.num_stages)
    return tower
