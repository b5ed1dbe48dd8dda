"""Training data: records, the skip accounting on bad rows, the collator and the grouped sampler."""

from __future__ import annotations

import json

import pytest
import torch

from convllava.constants import IGNORE_INDEX
from convllava.data import (
    SKIP_REASONS,
    ConversationCollator,
    ConversationDataset,
    ModalityLengthGroupedSampler,
    load_records,
    move_images_to_front,
)
from helpers import write_conversation_data

BAD_ROWS = {
    "malformed_record": {"id": "bad-malformed", "conversations": "not a list"},
    "bad_roles": {
        "id": "bad-roles",
        "conversations": [{"from": "gpt", "value": "I speak first."}, {"from": "human", "value": "Hi"}],
    },
    "image_placeholder_mismatch": {
        "id": "bad-placeholder",
        "image": "img0.png",
        "conversations": [{"from": "human", "value": "No placeholder."}, {"from": "gpt", "value": "Red."}],
    },
    "image_missing": {
        "id": "bad-missing",
        "image": "nowhere.png",
        "conversations": [{"from": "human", "value": "<image>\nColor?"}, {"from": "gpt", "value": "Red."}],
    },
    "image_unreadable": {
        "id": "bad-unreadable",
        "image": "corrupt.png",
        "conversations": [{"from": "human", "value": "<image>\nColor?"}, {"from": "gpt", "value": "Red."}],
    },
    "masking_failed": {"id": "bad-masking", "conversations": [{"from": "human", "value": "Only a question?"}]},
    "too_long": {
        "id": "bad-long",
        "image": "img0.png",
        "conversations": [
            {"from": "human", "value": "word " * 300},
            {"from": "gpt", "value": "OK."},
            {"from": "human", "value": "<image>\nColor?"},
            {"from": "gpt", "value": "Red."},
        ],
    },
}


def write_mixed_data(folder) -> tuple[str, str, int]:
    """Good rows with one bad row of every kind spliced in; returns (data file, image folder, good count)."""
    data, images = write_conversation_data(folder, n=8)
    (folder / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    lines = open(data).read().splitlines()
    good = len(lines)
    bad = [json.dumps(row) for row in BAD_ROWS.values()] + ["{not json"]
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i < len(bad):
            mixed.append(bad[i])
    (folder / "mixed.jsonl").write_text("\n".join(mixed) + "\n")
    return str(folder / "mixed.jsonl"), images, good


def test_every_bad_row_is_skipped_and_counted_under_its_reason(processor, tmp_path):
    data, images, good = write_mixed_data(tmp_path)
    records = load_records(data)
    dataset = ConversationDataset(records, processor, image_folder=images, max_length=256)
    reasons: dict[str, list[str]] = {}
    served = 0
    for index in range(len(dataset)):
        example = dataset[index]
        served += 1
        assert (example["labels"] != IGNORE_INDEX).any()
        for reason, record_id in example["skipped"]:
            reasons.setdefault(reason, []).append(record_id)
    assert served == len(records)  # a bad row never stops the epoch
    assert set(reasons) == set(SKIP_REASONS)
    assert reasons["malformed_record"] == [
        "bad-malformed",
        "#" + str(records.index(next(r for r in records if "__invalid__" in r))),
    ]
    for reason, row in BAD_ROWS.items():
        if reason != "malformed_record":
            assert reasons[reason] == [row["id"]], reason
    assert len(records) - sum(len(v) for v in reasons.values()) == good


def test_training_on_mixed_data_finishes_and_reports_skips(tiny_config, tokenizer, tmp_path):
    from convllava.training import load_train_config, run_training

    data, images, good = write_mixed_data(tmp_path)
    tokenizer.save_pretrained(tmp_path / "tok")
    config = load_train_config(
        None,
        [
            "model=convllava-tiny",
            f"tokenizer={tmp_path / 'tok'}",
            f"data={data}",
            f"image_folder={images}",
            f"output={tmp_path / 'out'}",
            "max_length=256",
            "global_batch_size=4",
            "per_device_batch_size=2",
            "save_steps=1000",
            "report_to=none",
            "gradient_checkpointing=false",
        ],
    )
    out = run_training(config)
    report = json.loads((out / "skip_report.json").read_text())
    assert report["counts"]["malformed_record"] == 2
    assert all(report["counts"][reason] == 1 for reason in SKIP_REASONS if reason != "malformed_record")
    assert report["record_ids"]["bad_roles"] == ["bad-roles"]
    log = json.loads((out / "train_log.json").read_text())
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == -(-(good + len(BAD_ROWS) + 1) // 4) and all(torch.isfinite(torch.tensor(losses)))
    assert log[-2]["samples_skipped"] == len(BAD_ROWS) + 1
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()


def test_move_images_to_front_matches_the_original_preprocessing():
    turns = move_images_to_front(
        [{"from": "human", "value": "What is this?\n<image>"}, {"from": "gpt", "value": "A cat."}]
    )
    assert turns[0]["value"] == "<image>\nWhat is this?"
    assert turns[1]["value"] == "A cat."


def test_json_list_and_datasets_folder_sources(tmp_path):
    rows = [{"id": 1, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert load_records(tmp_path / "d.json") == rows
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    assert load_records(tmp_path / "hf")[0]["conversations"] == rows[0]["conversations"]
    with pytest.raises(ValueError, match="JSON list"):
        (tmp_path / "obj.json").write_text("{}")
        load_records(tmp_path / "obj.json")


def test_collator_right_pads_and_concatenates_images():
    examples = [
        {
            "input_ids": torch.tensor([1, 5, 6]),
            "labels": torch.tensor([-100, 5, 6]),
            "pixel_values": torch.ones(1, 3, 4, 4),
            "skipped": [("too_long", "x")],
        },
        {"input_ids": torch.tensor([1, 7]), "labels": torch.tensor([-100, 7]), "skipped": []},
    ]
    batch = ConversationCollator(pad_token_id=0)(examples)
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [-100, 7, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["pixel_values"].shape == (1, 3, 4, 4)
    assert batch["skipped"] == [("too_long", "x")]


def test_sampler_groups_by_modality_and_length_deterministically():
    lengths = [10, -5, 30, -50, 20, 40, -15, -25]
    sampler = ModalityLengthGroupedSampler(lengths, mega_batch_size=2, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(8))
    for start in range(0, 8, 2):  # every mega-batch holds one modality, longest first
        pair = order[start : start + 2]
        assert len({lengths[i] > 0 for i in pair}) == 1
        assert abs(lengths[pair[0]]) >= abs(lengths[pair[1]])
    assert list(ModalityLengthGroupedSampler(lengths, 2, seed=3)) == order
    sampler.set_epoch(1)
    assert sorted(sampler) == list(range(8))
