"""The pipeline `convllava.load` returns (chat, batched generate, streaming) and the `generate` / `chat`
commands (resumable batch answering, terminal chat)."""

from __future__ import annotations

import argparse
import io
import json

import pytest
import torch

import convllava
from convllava.inference.batch import generate_file
from helpers import random_image


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_model, processor):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline(saved):
    return convllava.load(saved)


@pytest.fixture
def image_files(tmp_path):
    paths = []
    for i, (h, w) in enumerate([(80, 120), (64, 64), (100, 50)]):
        path = tmp_path / f"img{i}.png"
        random_image(h, w, seed=10 + i).save(path)
        paths.append(str(path))
    return paths


GEN = {"max_new_tokens": 6}


def test_chat_equals_a_manual_generate_call(pipeline, image_files):
    answer = pipeline.chat("What color is the square?", images=image_files[:1], **GEN)
    model, processor = pipeline  # unpacks like a (model, processor) pair
    prompt = processor.apply_chat_template([{"role": "user", "content": "<image>\nWhat color is the square?"}])
    inputs = processor(text=[prompt], images=image_files[:1])
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=2)
    assert (
        answer == processor.tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    )


def test_batched_generate_equals_one_by_one_and_stream_equals_chat(pipeline, image_files):
    requests = [
        {"messages": [{"role": "user", "content": "<image>\nHow many circles?"}], "images": image_files[:1]},
        {"messages": [{"role": "user", "content": "Describe the picture in detail please."}]},
        {"messages": [{"role": "user", "content": "<image>\n<image>\nCompare."}], "images": image_files[1:]},
    ]
    batched = pipeline.generate(requests, **GEN)
    singles = [pipeline.generate([r], **GEN)[0] for r in requests]
    assert batched == singles
    streamed = "".join(pipeline.stream("How many circles?", images=image_files[:1], **GEN)).strip()
    assert streamed == batched[0]


def test_multi_turn_chat_keeps_the_history(pipeline, image_files):
    first = pipeline.chat("What color is the square?", images=image_files[:1], **GEN)
    messages = [
        {"role": "user", "content": "<image>\nWhat color is the square?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "And the circle?"},
    ]
    follow_up = pipeline.chat(messages, images=image_files[:1], **GEN)
    assert isinstance(follow_up, str)
    assert pipeline.processor.apply_chat_template(messages).count("ASSISTANT:") == 2


def test_generate_file_appends_resumes_and_reports_bad_rows(pipeline, image_files, tmp_path):
    questions = [
        {"id": "q1", "question": "What color is the square?", "image": image_files[0]},
        {"id": "q2", "question": "How many circles?"},
        {"id": "q3", "question": "Color?", "image": str(tmp_path / "missing.png")},
        {"id": "q4", "messages": [{"role": "user", "content": "<image>\nWhat?"}], "image": [image_files[2]]},
        {"id": "q5", "question": "Describe it.", "image": image_files[1]},
    ]
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps(q) + "\n" for q in questions))
    output = tmp_path / "a.jsonl"
    output.write_text(
        json.dumps({"id": "q1", "answer": "from an earlier run"}) + "\n" + '{"id": "q2", "ans'
    )  # torn line
    counts = generate_file(pipeline, source, output, batch_size=2, **GEN)
    assert counts == {"answered": 3, "errors": 1, "skipped_already_done": 1}
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4", "q5"]
    assert rows[0]["answer"] == "from an earlier run"
    assert "missing.png" in rows[2]["error"]
    assert rows[1]["answer"] == pipeline.chat("How many circles?", **GEN)
    assert rows[4]["answer"] == pipeline.chat("Describe it.", images=[image_files[1]], **GEN)
    again = generate_file(pipeline, source, output, batch_size=2, **GEN)
    assert again == {"answered": 0, "errors": 0, "skipped_already_done": 5}


def test_generate_file_needs_ids(pipeline, tmp_path):
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"question": "no id"}) + "\n")
    with pytest.raises(ValueError, match="has no 'id'"):
        generate_file(pipeline, source, tmp_path / "a.jsonl")


def test_generate_file_names_the_line_that_is_not_json(pipeline, tmp_path):
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"id": "q1", "question": "Hi?"}) + "\n\n{not json\n")
    with pytest.raises(ValueError, match=r"q\.jsonl:3 is not valid JSON"):
        generate_file(pipeline, source, tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()  # checked before anything is written


def test_terminal_chat_streams_and_saves(saved, pipeline, image_files, tmp_path):
    from convllava.cli.generate import run_chat

    args = argparse.Namespace(
        model=str(saved), image=[], max_new_tokens=6, temperature=0.0, dtype=None, device=None, template=None
    )
    transcript = tmp_path / "chat.json"
    stdin = io.StringIO(f"/image {image_files[0]}\nWhat color is the square?\n/save {transcript}\n/quit\n")
    stdout = io.StringIO()
    assert run_chat(args, stdin=stdin, stdout=stdout) == 0
    expected = pipeline.chat("What color is the square?", images=image_files[:1], **GEN)
    assert f"assistant: {expected}" in stdout.getvalue().replace("assistant:  ", "assistant: ")
    saved_chat = json.loads(transcript.read_text())
    assert saved_chat["images"] == image_files[:1]
    assert saved_chat["messages"][0]["content"] == "<image>\nWhat color is the square?"
    assert saved_chat["messages"][1]["content"] == expected


def test_quantised_loading_explains_what_it_needs(saved):
    from convllava.models.zoo.loading import quantization_config

    with pytest.raises(ValueError, match="4 or 8 bits"):
        quantization_config(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA GPU and bitsandbytes"):
            convllava.load(saved, quantize_bits=4)
