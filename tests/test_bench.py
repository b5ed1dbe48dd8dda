"""Benchmarks: the reference of the original forward computes the same logits as our model (so ratios compare
equal work), channels-last keeps the numbers, the CLIP tower matches transformers' CLIP (also with interpolated
position embeddings), and each `convllava bench` kind writes its JSON, table and plot."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from convllava.bench.reference import ReferenceConvLlava
from convllava.cli.main import main
from convllava.models.vision.clip import ClipVisionTower


def _prompt(model, batch=2):
    tokens = model.model.num_image_tokens(256, 256)
    image = torch.full((batch, tokens), model.config.image_token_id)
    text = torch.randint(3, 500, (batch, 12), generator=torch.Generator().manual_seed(0))
    return torch.cat([text[:, :4], image, text[:, 4:]], dim=1), torch.randn(batch, 3, 256, 256)


def test_reference_forward_matches_ours(tiny_model):
    ids, pixels = _prompt(tiny_model)
    with torch.inference_mode():
        ours = tiny_model(input_ids=ids, pixel_values=pixels).logits
        reference = ReferenceConvLlava(tiny_model)(ids, pixels)
    assert torch.allclose(ours, reference, atol=1e-4), (ours - reference).abs().max()


def test_channels_last_keeps_fp32_logits_within_1e_4(tiny_model):
    ids, pixels = _prompt(tiny_model)
    with torch.inference_mode():
        plain = tiny_model(input_ids=ids, pixel_values=pixels).logits
        tiny_model.model.vision_tower.use_channels_last(True)
        try:
            fast = tiny_model(input_ids=ids, pixel_values=pixels).logits
        finally:
            tiny_model.model.vision_tower.use_channels_last(False)
    assert (plain - fast).abs().max() < 1e-4


def test_clip_tower_matches_transformers_also_interpolated():
    config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                              patch_size=14, image_size=56)  # fmt: skip
    torch.manual_seed(0)
    reference = CLIPVisionModel(config).eval()
    ours = ClipVisionTower(config, feature_layer=-2).eval()
    state = {k.removeprefix("vision_model."): v for k, v in reference.state_dict().items()}  # 5.16 nests it
    ours.load_state_dict(state, strict=False)
    for side in (56, 112):
        x = torch.randn(1, 3, side, side)
        with torch.inference_mode():
            expected = reference(x, output_hidden_states=True, interpolate_pos_encoding=side != 56).hidden_states[-2]
            assert torch.allclose(ours(x), expected[:, 1:], atol=1e-5)
        assert ours(x).shape[1] == (side // 14) ** 2


def test_bench_encoder_cli_writes_json_table_and_plot(tmp_path):
    out = tmp_path / "enc.json"
    args = [
        "bench",
        "encoder",
        "--model",
        "convllava-tiny",
        "--image-size",
        "128",
        "256",
        "--clip-size",
        "--iters",
        "1",
    ]
    assert main([*args, "--output", str(out), "--plot", str(tmp_path / "cost.png")]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["tokens"] for r in rows] == [4, 16] and rows[1]["ours"]["gflops"] > 3.9 * rows[0]["ours"]["gflops"]
    assert rows[0]["ours"]["gflops"] == rows[0]["original"]["gflops"] and rows[0]["ours_vs_original"] > 0
    assert (tmp_path / "cost.png").stat().st_size > 1000 and "| convnext-5stage | 256 | 16 |" in result["markdown"]


@pytest.mark.slow
def test_bench_lm_and_train_cli(tmp_path, capsys):
    for kind in ("prefill", "generate"):
        assert main(["bench", kind, "--model", "convllava-tiny", "--batch-size", "1", "2", "--iters", "1",
                     "--new-tokens", "2", "--output", str(tmp_path / f"{kind}.json")]) == 0  # fmt: skip
        rows = json.loads((tmp_path / f"{kind}.json").read_text())["rows"]
        assert [r["batch"] for r in rows] == [1, 2] and all(r["ours_vs_hf-llava"] > 0 for r in rows)
    assert main(["bench", "train", "--model", "convllava-tiny", "--batch-size", "2", "--iters", "1",
                 "--output", str(tmp_path / "train.json")]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "train.json").read_text())["rows"]
    assert len(rows) == 6 and rows[0]["trainable_params"] < rows[2]["trainable_params"]
    assert (
        main(["bench", "train", "--model", "convllava-tiny", "--plot", "x.png", "--batch-size", "1", "--iters", "1"])
        == 2
    )
    assert "--plot draws encoder cost" in capsys.readouterr().err
