"""base.py

`StagedTower`: what every vision tower shares -- freezing, and unfreezing its repeated units (ConvNeXt
stages, ViT layers) from an index on, which the training stages use. `ViTTower`: what the ViT towers add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PretrainedConfig

from .dense import check_groups, default_groups, integrate_channels


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
    sdpa attention by default, the layer loop and the Dense Connector (dense.py). `n_run`: how many layers run
    (the index into transformers' hidden_states). A tower supplies `build` (its modules), `embed`, `select_tokens`
    and, where its layers take other arguments than (hidden, mask), `run_layer`."""

    unit_name = "layers"
    feature_selects: tuple[str, ...] = ("patch",)
    #: the feature layer when none is given (LLaVA's CLIP: -2; SigLIP / DINOv2: -1, the last)
    default_feature_layer: int = -1

    def __init__(
        self,
        config: PretrainedConfig,
        feature_layer: int | None = None,
        select: str = "patch",
        dense_connector: str | None = None,
        dense_groups: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        feature_layer = self.default_feature_layer if feature_layer is None else feature_layer
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
        self.dense_groups: list[list[int]] = []
        if dense_connector is not None:
            if select != "patch":
                raise ValueError("the dense connector integrates patch tokens: use vision_feature_select='patch'")
            groups = dense_groups or default_groups(dense_connector, n_layers)
            check_groups(groups, self.n_run)
            self.dense_groups = [list(group) for group in groups]
        self.build(config)

    def build(self, config: PretrainedConfig) -> None:
        raise NotImplementedError

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run_layer(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return layer(hidden, None)

    def select_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(pixel_values)
        keep = {i for group in self.dense_groups for i in group}
        states = {0: hidden} if 0 in keep else {}
        for index, layer in enumerate(self.units[: self.n_run], start=1):
            hidden = self.run_layer(layer, hidden)
            if index in keep:
                states[index] = hidden
        features = self.select_tokens(hidden)
        if not self.dense_groups:
            return features
        states = {i: self.select_tokens(h) for i, h in states.items()}
        return integrate_channels(features, states, self.dense_groups)

    @property
    def stride(self) -> int:
        return self.config.patch_size

    @property
    def hidden_size(self) -> int:
        """Channels of what `forward` returns: the width, times 1 + the dense connector's groups."""
        return self.config.hidden_size * (1 + len(self.dense_groups))

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.config.patch_size, width // self.config.patch_size
