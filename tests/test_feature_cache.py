"""The frozen tower's feature cache (`cache_vision_features`) and length grouping over several batches: training
on cached features gives the losses of training on images, the model takes precomputed tower outputs in place of
pixels, and both options refuse what would make them wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convllava import ConvLlavaForConditionalGeneration
from convllava.data import ConversationCollator, ConversationDataset, ModalityLengthGroupedSampler
from convllava.training import load_train_config, run_training
from convllava.training.feature_cache import cache_vision_features
from helpers import write_conversation_data


def _config(saved_tiny, tmp_path, name, *extra):
    data, images = write_conversation_data(tmp_path / "data", n=16)
    return load_train_config(
        None,
        [f"model={saved_tiny}", f"data={data}", f"image_folder={images}", f"output={tmp_path / name}",
         "trainable.language_model=true", "learning_rate=1e-3", "global_batch_size=4", "per_device_batch_size=4",
         "report_to=none", *extra],
    )  # fmt: skip


def _losses(output: Path) -> list[float]:
    return [e["loss"] for e in json.loads((output / "train_log.json").read_text()) if "loss" in e]


def test_training_on_cached_features_gives_the_losses_of_training_on_images(saved_tiny, tmp_path):
    images = _losses(run_training(_config(saved_tiny, tmp_path, "images", "num_epochs=2")))
    cached = _losses(
        run_training(_config(saved_tiny, tmp_path, "cached", "num_epochs=2", "cache_vision_features=true"))
    )
    assert len(images) == 8
    assert cached == pytest.approx(images, rel=1e-4)


def test_the_cache_refuses_a_tower_that_trains(saved_tiny, tmp_path):
    config = _config(saved_tiny, tmp_path, "out", "cache_vision_features=true", "trainable.vision_from_stage=3")
    with pytest.raises(ValueError, match=r"needs a frozen vision tower, but \d+ of its parameters train"):
        run_training(config)


def test_precomputed_tower_outputs_give_the_logits_of_pixels(tiny_model, processor, images):
    prompt = processor.apply_chat_template([{"role": "user", "content": "<image>\nWhat color?"}])
    inputs = processor(text=[prompt], images=[images[1]], return_tensors="pt")
    with torch.no_grad():
        tower = tiny_model.vision_tower(inputs["pixel_values"])
        expected = tiny_model(**inputs).logits
        pixels = inputs.pop("pixel_values")
        got = tiny_model(**inputs, vision_features=tower).logits
        with pytest.raises(ValueError, match="should be \\(num_images, 16, channels\\)"):
            tiny_model(**inputs, vision_features=tower[:, :8])
        with pytest.raises(ValueError, match="not both"):
            tiny_model(**inputs, pixel_values=pixels, vision_features=tower)
    torch.testing.assert_close(got, expected)


def test_cached_examples_match_image_examples_and_unreadable_images_are_skipped(tiny_model, processor, tmp_path):
    data, folder = write_conversation_data(tmp_path / "data", n=8)
    records = [json.loads(line) for line in Path(data).read_text().splitlines()]
    plain = ConversationDataset(records, processor, image_folder=folder)
    paths = plain.image_paths()
    assert len(paths) == 6 and all(p.is_file() for p in paths)  # 8 records, every 4th text-only
    (Path(folder) / "broken.png").write_text("not a png")
    tiny_model.vision_tower.requires_grad_(False)  # the cache takes a frozen tower only
    try:
        cache = cache_vision_features(tiny_model, processor, [*paths, Path(folder) / "broken.png"], batch_size=4)
    finally:
        tiny_model.vision_tower.requires_grad_(True)
    assert cache[str(Path(folder) / "broken.png")] is None
    cached = ConversationDataset(records, processor, image_folder=folder, vision_features=cache)
    for i in range(len(records)):
        a, b = plain[i], cached[i]
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert "pixel_values" not in b and ("vision_features" in b) == ("pixel_values" in a)
        if "pixel_values" in a:
            with torch.no_grad():
                torch.testing.assert_close(b["vision_features"], tiny_model.vision_tower(a["pixel_values"]))
    batch = ConversationCollator(0)([cached[0], cached[1]])
    assert batch["vision_features"].shape == (2, 16, 384)
    broken = [{"id": "b", "image": "broken.png", "conversations": records[0]["conversations"]}, records[1]]
    example = ConversationDataset(broken, processor, image_folder=folder, vision_features=cache)[0]
    assert example["skipped"] == [("image_unreadable", "b")]


def test_grouping_several_batches_by_length_cuts_padding():
    lengths = [(7 * i) % 50 + 10 for i in range(64)]
    sampler = ModalityLengthGroupedSampler(lengths, 4, seed=0, batches_per_group=8)
    order = list(sampler)
    assert sorted(order) == list(range(64))

    def padded(order):
        return sum(max(lengths[i] for i in order[k : k + 4]) * 4 for k in range(0, 64, 4))

    assert padded(order) < padded(list(ModalityLengthGroupedSampler(lengths, 4, seed=0)))
    assert list(ModalityLengthGroupedSampler(lengths, 4, seed=0, batches_per_group=8)) == order
    with pytest.raises(ValueError, match="batches_per_group must be positive"):
        ModalityLengthGroupedSampler(lengths, 4, batches_per_group=0)


def test_precomputed_tower_outputs_need_one_fixed_image_size(tiny_config, tmp_path):
    config = tiny_config.__class__.from_dict({**tiny_config.to_dict(), "image_resize_mode": "native"})
    model = ConvLlavaForConditionalGeneration(config).eval()
    with pytest.raises(ValueError, match="image_resize_mode='native' gives each image its own"):
        model.model.project_vision_features(torch.zeros(1, 16, 384))
    model.vision_tower.requires_grad_(False)
    with pytest.raises(
        ValueError, match=r"cache_vision_features: .*image_resize_mode='native' gives each image its own"
    ):
        cache_vision_features(model, None, [tmp_path / "any.png"])
