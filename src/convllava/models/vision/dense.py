"""dense.py

The Dense Connector (Yao et al., NeurIPS 2024) on the ViT towers: the selected layer's patch tokens, with the
averages of groups of earlier hidden states concatenated on the channels, so a plain MLP projector sees several
depths of the encoder at no extra visual tokens. Two of its three forms:

- `sci` (sparse channel integration): hidden states 7 and 15, each a group of one;
- `dci` (dense channel integration, the paper's best): the mean of hidden states 0..L/2-1 and of L/2..L-1, with L
  the tower's layer count (CLIP-L: 0-11 and 12-23; the 26-layer SigLIP the original runs: 0-12 and 13-25).

Hidden states are numbered as transformers does (0 = the embeddings), and each group's mean is its sum over its
size, as the original computes it. The projector input is (1 + number of groups) x the tower width (the original's
`mm_hidden_size = 3 * hidden_size`). Its third form, `sti`, appends pooled tokens instead and is not offered: it
changes the visual token count to something the token-grid connectors cannot take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: The forms offered, as the original's `mm_dense_connector_type` names them.
DENSE_CONNECTORS: tuple[str, ...] = ("sci", "dci")
#: The original's fixed layers for `sci` (chosen for 24- and 26-layer towers).
SCI_LAYERS: tuple[int, ...] = (7, 15)


def check_dense_connector(kind: str | None) -> None:
    if kind is None or kind in DENSE_CONNECTORS:
        return
    hint = " ('sti' appends pooled tokens, which the token-grid connectors cannot take)" if kind == "sti" else ""
    raise ValueError(f"dense_connector={kind!r} is not one of {DENSE_CONNECTORS} or None{hint}")


def default_groups(kind: str, num_layers: int) -> list[list[int]]:
    """The hidden-state indices each of `kind`'s groups averages, as the original picks them."""
    check_dense_connector(kind)
    if kind == "sci":
        return [[i] for i in SCI_LAYERS]
    half = num_layers // 2
    return [list(range(half)), list(range(half, 2 * half))]


def check_groups(groups: Sequence[Sequence[int]], feature_index: int) -> None:
    """Every index must be a hidden state the tower computes: 0 .. the selected layer's index."""
    if not groups or any(not group for group in groups):
        raise ValueError(f"dense connector groups must be non-empty lists of hidden-state indices, got {groups!r}")
    late = sorted({i for group in groups for i in group if not 0 <= i <= feature_index})
    if late:
        raise ValueError(
            f"dense connector hidden states {late} are not computed: the tower runs hidden states 0..{feature_index} "
            "(up to vision_feature_layer); pick groups within that range"
        )


def integrate_channels(
    features: torch.Tensor, states: dict[int, torch.Tensor], groups: Sequence[Sequence[int]]
) -> torch.Tensor:
    """(B, N, C) features + each group's mean of `states` (index -> (B, N, C)) -> (B, N, C * (1 + len(groups)))."""
    means = [torch.stack([states[i] for i in group]).sum(dim=0) / len(group) for group in groups]
    return torch.cat([features, *means], dim=-1)
