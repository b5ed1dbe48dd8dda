"""Any transformers image-text-to-text checkpoint (here a tiny llava-hf style LlavaForConditionalGeneration)
runs through `convllava.load`, the batch job and the server's prompt counting."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers.models.llava.processing_llava import LlavaProcessor

import convllava
from conftest import CORPUS
from convllava.inference.batch import generate_file
from convllava.processing import train_tokenizer
from helpers import random_image

TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@pytest.fixture(scope="module")
def llava_hf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llava-hf")
    tokenizer = train_tokenizer(CORPUS * 20, vocab_size=512)
    torch.manual_seed(3)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, image_size=28, patch_size=14),
        text_config=LlamaConfig(vocab_size=513, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, pad_token_id=0),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )  # fmt: skip
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    LlavaProcessor(image_processor, tokenizer, patch_size=14, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1, chat_template=TEMPLATE).save_pretrained(folder)  # fmt: skip
    return folder


def test_llava_hf_checkpoint_runs_through_the_pipeline(llava_hf, tmp_path):
    pipe = convllava.load(llava_hf)
    model, adapter = pipe
    assert isinstance(model, LlavaForConditionalGeneration)
    image = random_image(40, 30, seed=9)
    answer = pipe.chat("What color is the square?", images=[image], max_new_tokens=5)
    prompt = adapter.apply_chat_template([{"role": "user", "content": "<image>\nWhat color is the square?"}])
    assert prompt == "USER: <image>\nWhat color is the square? ASSISTANT:"
    inputs = adapter.processor(text=[prompt], images=[image], return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=2)
    expected = adapter.tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert answer == expected
    assert (
        adapter.count_prompt_tokens([{"role": "user", "content": "<image>\nWhat color is the square?"}], [image])
        == (inputs["input_ids"].shape[1])
    )
    batch = pipe.generate([{"messages": [{"role": "user", "content": "<image>\nWhat color is the square?"}], "images": [image]},
                           {"messages": [{"role": "user", "content": "How many circles?"}]}], max_new_tokens=5)  # fmt: skip
    assert batch[0] == answer

    path = tmp_path / "img.png"
    image.save(path)
    (tmp_path / "q.jsonl").write_text(
        json.dumps({"id": 1, "question": "What color is the square?", "image": str(path)}) + "\n"
    )
    counts = generate_file(pipe, tmp_path / "q.jsonl", tmp_path / "a.jsonl", max_new_tokens=5)
    assert counts["answered"] == 1
    assert json.loads((tmp_path / "a.jsonl").read_text())["answer"] == answer
