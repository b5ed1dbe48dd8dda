"""base.py

`StagedTower`: what every vision tower shares -- freezing, and unfreezing its repeated units (ConvNeXt
stages, ViT layers) from an index on, which the training stages use.
"""

from __future__ import annotations

from torch import nn


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
