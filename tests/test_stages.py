"""What each shipped stage trains, exactly, and the optimizer's per-module learning rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from convllava import ConvLlavaForConditionalGeneration
from convllava.training import apply_trainable_parts, load_train_config, parameter_groups

CONFIGS = Path(__file__).parent.parent / "configs"


def _trainable_groups(model) -> set[str]:
    groups = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        parts = name.split(".")
        if name.startswith("model.vision_tower.encoder.stages."):
            groups.add(f"vision.stage{parts[4]}")
        elif name.startswith("model.vision_tower."):
            groups.add("vision.stem")
        else:
            groups.add(".".join(parts[:2]) if parts[0] == "model" else parts[0])
    return groups


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("projector-init", {"vision.stage4", "model.projector"}),
        (
            "vl-pretrain",
            {"vision.stage2", "vision.stage3", "vision.stage4", "model.projector", "model.language_model", "lm_head"},
        ),
        ("instruct", {"model.projector", "model.language_model", "lm_head"}),
    ],
)
def test_each_stage_sets_exactly_its_trainable_groups(tiny_config, stage, expected):
    model = ConvLlavaForConditionalGeneration(tiny_config)
    config = load_train_config(CONFIGS / f"{stage}.yaml", ["model=m", "data=d"])
    summary = apply_trainable_parts(model, config.trainable)
    assert _trainable_groups(model) == expected
    for part in ("projector", "language_model", "lm_head"):
        trains = any(g.endswith(part) for g in expected)
        assert (summary[part]["trainable"] == summary[part]["total"]) == trains


def test_per_module_learning_rates_and_no_decay_for_norms(tiny_config):
    model = ConvLlavaForConditionalGeneration(tiny_config)
    config = load_train_config(
        CONFIGS / "vl-pretrain.yaml",
        ["model=m", "data=d", "projector_lr=1e-3", "vision_tower_lr=5e-6", "weight_decay=0.1"],
    )
    apply_trainable_parts(model, config.trainable)
    groups = parameter_groups(model, config)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_id[id(named["model.projector.0.weight"])] == (1e-3, 0.1)
    assert by_id[id(named["model.projector.0.bias"])] == (1e-3, 0.0)
    assert by_id[id(named["model.vision_tower.encoder.stages.4.layers.0.pwconv1.weight"])] == (5e-6, 0.1)
    assert by_id[id(named["model.language_model.layers.0.self_attn.q_proj.weight"])] == (2e-5, 0.1)
    assert by_id[id(named["model.language_model.norm.weight"])] == (2e-5, 0.0)
    assert id(named["model.vision_tower.encoder.stages.0.layers.0.pwconv1.weight"]) not in by_id  # frozen
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
