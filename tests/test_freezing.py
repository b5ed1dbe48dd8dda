"""Setting trainable parts by name and the frozen / trainable summary."""

from __future__ import annotations

import logging

import pytest

from convllava import ConvLlavaForConditionalGeneration
from convllava.models.freezing import log_trainable_summary, set_trainable


def test_stage1_style_freezing_is_reported_per_part_and_stage(tiny_config, caplog):
    model = ConvLlavaForConditionalGeneration(tiny_config)
    set_trainable(model, {"vision_tower": False, "language_model": False, "lm_head": False, "projector": True})
    model.model.vision_tower.stages[-1].requires_grad_(True)  # the new 5th stage trains in stage 1
    with caplog.at_level(logging.INFO, logger="convllava"):
        summary = log_trainable_summary(model)
    assert summary["projector"]["trainable"] == summary["projector"]["total"] > 0
    assert summary["language_model"]["trainable"] == 0 and summary["lm_head"]["trainable"] == 0
    assert summary["vision_tower.stage4"]["trainable"] == summary["vision_tower.stage4"]["total"]
    assert summary["vision_tower.stage3"]["trainable"] == 0 and summary["vision_tower.stem"]["trainable"] == 0
    assert 0 < summary["vision_tower"]["trainable"] < summary["vision_tower"]["total"]
    text = caplog.text
    assert "projector" in text and "🔥 trainable" in text and "🥶 frozen" in text and "partly trainable" in text
    total = sum(p.numel() for p in model.parameters())
    parts = sum(summary[p]["total"] for p in ("vision_tower", "projector", "language_model", "lm_head"))
    assert parts == total


def test_unknown_part_is_an_error(tiny_config):
    model = ConvLlavaForConditionalGeneration(tiny_config)
    with pytest.raises(ValueError, match="unknown model part"):
        set_trainable(model, {"mm_projector": True})
