"""base.py

`StagedTower`: what every vision tower shares -- freezing, and unfreezing its repeated units (ConvNeXt
stages, ViT layers) from an index on, which the training stages use. `ViTTower`: what the ViT towers add.
"""

from __future__ import annotations

from torch import nn
from transformers import PretrainedConfig


class StagedTower(nn.Module):
    #: attribute path of the ModuleList of repeated units, e.g. "encoder.stages"
    units_path: str = ""
    #: what a unit is called in error messages
    unit_name: str = "stages"

    @property
    def units(self) -> nn.ModuleList:
        module: nn.Module = self
        for attr in self.units_path.split("."):
            module = getattr(module, attr)
        return module  # type: ignore[return-value]

    def freeze(self) -> None:
        self.requires_grad_(False)

    def unfreeze_stages(self, from_stage: int) -> list[int]:
        """Make units `from_stage`.. (0-indexed) trainable and everything before them frozen; return their indices."""
        n = len(self.units)
        if not 0 <= from_stage < n:
            raise ValueError(f"from_stage={from_stage} is out of range: this tower has {self.unit_name} 0..{n - 1}")
        self.freeze()
        for index in range(from_stage, n):
            self.units[index].requires_grad_(True)
        return list(range(from_stage, n))


class ViTTower(StagedTower):
    """What the ViT towers (CLIP, SigLIP, DINOv2) share: the feature layer and selection checks, the patch grid,
    and sdpa attention by default. `n_run`: how many layers run (the index into transformers' hidden_states)."""

    unit_name = "layers"
    feature_selects: tuple[str, ...] = ("patch",)

    def __init__(self, config: PretrainedConfig, feature_layer: int, select: str) -> None:
        super().__init__()
        if select not in self.feature_selects:
            raise ValueError(
                f"vision_feature_select={select!r} is not one of {self.feature_selects} for {type(self).__name__}"
            )
        n_layers = config.num_hidden_layers
        if not -(n_layers + 1) <= feature_layer <= n_layers:
            raise ValueError(f"vision_feature_layer={feature_layer} is out of range for {n_layers} layers")
        if getattr(config, "_attn_implementation", None) is None:
            config._attn_implementation = "sdpa"
        self.config = config
        self.feature_layer = feature_layer
        self.select = select
        self.n_run = feature_layer % (n_layers + 1)  # index into hidden_states: the layers to run

    @property
    def stride(self) -> int:
        return self.config.patch_size

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.config.patch_size, width // self.config.patch_size
