"""Image processor, conversation templates, label masks and the processor's save / load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, CLIPImageProcessor

from convllava import ConvLlavaProcessor
from convllava.constants import CLIP_MEAN, CLIP_STD, IGNORE_INDEX, PAD_COLOR
from convllava.processing import (
    ConvLlavaImageProcessor,
    TemplateError,
    expand_to_square,
    get_template,
    native_size,
    normalize_messages,
)
from helpers import random_image

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
CONVERSATION = [
    {"from": "human", "value": "<image>\nWhat is this?"},
    {"from": "gpt", "value": "A red square."},
    {"from": "human", "value": "How many circles?"},
    {"from": "gpt", "value": "Three circles."},
]


# --- image processor ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("height", "width"), [(120, 200), (300, 90), (256, 256)])
def test_pad_mode_equals_clip_image_processor_after_pad_to_square(height, width):
    image = random_image(height, width, seed=height)
    ours = ConvLlavaImageProcessor(size=256, resize_mode="pad")(image)["pixel_values"]
    clip = CLIPImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 256, "width": 256},
        do_center_crop=True,
        resample=3,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    reference = clip(expand_to_square(image, (122, 116, 104)), return_tensors="pt")["pixel_values"]
    assert ours.shape == reference.shape == (1, 3, 256, 256)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_pad_colour_and_centring_follow_expand2square():
    assert PAD_COLOR == (122, 116, 104)
    image = random_image(40, 100)
    square = expand_to_square(image, PAD_COLOR)
    assert square.size == (100, 100)
    pixels = np.asarray(square)
    assert (pixels[:30] == PAD_COLOR).all() and (pixels[70:] == PAD_COLOR).all()  # (100 - 40) // 2 = 30 rows
    assert (pixels[30:70] == np.asarray(image)).all()


def test_resize_mode_squashes_to_square():
    out = ConvLlavaImageProcessor(size=128, resize_mode="resize")(random_image(50, 200))["pixel_values"]
    assert out.shape == (1, 3, 128, 128)


def test_native_mode_keeps_aspect_and_rounds_to_stride():
    assert native_size(width=1000, height=600, short_side=768, stride=64) == (768, 1280)
    assert native_size(width=300, height=900, short_side=256, stride=64) == (768, 256)
    processor = ConvLlavaImageProcessor(size=256, resize_mode="native", stride=64)
    out = processor([random_image(100, 300), random_image(200, 200)])
    assert out["image_sizes"].tolist() == [[256, 768], [256, 256]]
    assert out["pixel_values"].shape == (2, 3, 256, 768)
    assert torch.all(out["pixel_values"][1, :, :, 256:] == 0)  # padding beyond the smaller image


def test_image_processor_accepts_paths(tmp_path):
    path = tmp_path / "x.png"
    random_image(64, 64).save(path)
    assert ConvLlavaImageProcessor(size=64)(str(path))["pixel_values"].shape == (1, 3, 64, 64)


# --- templates ---------------------------------------------------------------------------------------------
def test_vicuna_v1_prompt_string_is_the_original():
    rendered = get_template("vicuna_v1").render(CONVERSATION)
    assert rendered.text == (
        f"{VICUNA_SYSTEM} USER: <image>\nWhat is this? ASSISTANT: A red square.</s>"
        "USER: How many circles? ASSISTANT: Three circles.</s>"
    )
    assert [rendered.text[a:b] for a, b in rendered.trained_spans] == [" A red square.</s>", " Three circles.</s>"]
    prompt = get_template("vicuna_v1").render(CONVERSATION[:1], add_generation_prompt=True).text
    assert prompt == f"{VICUNA_SYSTEM} USER: <image>\nWhat is this? ASSISTANT:"


def test_vicuna_v1_label_mask_token_by_token(processor, tokenizer):
    example = processor.build_training_example(CONVERSATION, [random_image(64, 64)])
    ids, labels = example["input_ids"].tolist(), example["labels"].tolist()
    n_img = 16
    image_at = ids.index(processor.image_token_id)
    assert ids[image_at : image_at + n_img] == [processor.image_token_id] * n_img

    # Independent reference, without offsets: the tokens of the text after the image, with each answer's
    # token range found by tokenizing the prefixes that end where the answer starts and ends.
    text = get_template("vicuna_v1").render(CONVERSATION).text
    before, after = text.split("<image>")
    head_ids = tokenizer(before)["input_ids"]
    tail_ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    assert ids == head_ids + [processor.image_token_id] * n_img + tail_ids

    def n_tokens(prefix: str) -> int:
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        assert tail_ids[: len(prefix_ids)] == prefix_ids, "span boundary is not a token boundary"
        return len(prefix_ids)

    trained_positions = set()
    for answer in (" A red square.</s>", " Three circles.</s>"):
        start = after.index(answer)
        trained_positions |= set(range(n_tokens(after[:start]), n_tokens(after[: start + len(answer)])))
    expected_tail = [t if i in trained_positions else IGNORE_INDEX for i, t in enumerate(tail_ids)]
    assert labels == [IGNORE_INDEX] * (len(head_ids) + n_img) + expected_tail
    trained = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained).count("</s>") == 2  # each answer ends with its end token
    assert labels[0] == IGNORE_INDEX and ids[0] == tokenizer.bos_token_id


def test_chat_template_path_uses_the_tokenizers_template(processor, tokenizer):
    tok = tokenizer.__class__.from_pretrained(_save(tokenizer))
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat = ConvLlavaProcessor(processor.image_processor, tok, template="chat_template")
    messages = [
        {"role": m["from"].replace("human", "user").replace("gpt", "assistant"), "content": m["value"]}
        for m in CONVERSATION
    ]
    rendered = chat.render(messages)
    assert rendered.text.startswith("<|user|><image>\nWhat is this?</s><|assistant|>A red square.</s>")
    assert [rendered.text[a:b] for a, b in rendered.trained_spans] == ["A red square.</s>", "Three circles.</s>"]
    example = chat.build_training_example(messages, [random_image(64, 64)])
    trained = example["input_ids"][example["labels"] != IGNORE_INDEX]
    assert tok.decode(trained).replace(" ", "") == "Aredsquare.</s>Threecircles.</s>"


def _save(tokenizer):
    import tempfile

    path = tempfile.mkdtemp()
    tokenizer.save_pretrained(path)
    return path


def test_malformed_roles_are_rejected():
    with pytest.raises(TemplateError, match="alternate"):
        normalize_messages([{"role": "assistant", "content": "hi"}])
    with pytest.raises(TemplateError, match="unknown role"):
        normalize_messages([{"from": "robot", "value": "hi"}])
    with pytest.raises(ValueError, match="unknown conversation template"):
        get_template("llava_v0")


def test_content_parts_become_image_placeholders():
    messages = normalize_messages([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}])
    assert messages[0].content == "<image>\nHi?"


# --- processor ---------------------------------------------------------------------------------------------
def test_processor_expands_each_image_to_its_token_count(processor):
    batch = processor(text=["<image> one", "two <image> <image>"], images=[random_image(64, 64)] * 3)
    counts = (batch["input_ids"] == processor.image_token_id).sum(-1).tolist()
    assert counts == [16, 32]
    assert processor.num_image_tokens(1536, 1536) == 576


def test_processor_save_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ConvLlavaProcessor)
    assert (loaded.template, loaded.projector_type, loaded.image_token_id) == ("vicuna_v1", "mlp2x_gelu", 512)
    assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
    image = random_image(90, 70)
    a, b = processor(text=["<image> x"], images=[image]), loaded(text=["<image> x"], images=[image])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_processor_rejects_tokenizer_without_image_token(processor, tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    bare = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(ValueError, match="add_image_token"):
        ConvLlavaProcessor(processor.image_processor, bare)


# --- tokenizer ---------------------------------------------------------------------------------------------
def test_trained_tokenizer_keeps_each_phrase_as_one_in_vocabulary_token(tmp_path):
    from convllava.processing import train_tokenizer

    suffix = "\nAnswer the question using a single word or phrase."
    corpus = [f"What color is the {s}?{suffix} red" for s in ("circle", "square", "dot")] * 30
    tokenizer = train_tokenizer(corpus, vocab_size=128, phrases=[suffix, "ASSISTANT:"])
    assert tokenizer.convert_tokens_to_ids("<image>") == 128  # the image token stays outside the vocabulary
    assert tokenizer.convert_tokens_to_ids(suffix) < 128 and tokenizer.convert_tokens_to_ids("ASSISTANT:") < 128
    tokenizer.save_pretrained(tmp_path)
    loaded = type(tokenizer).from_pretrained(tmp_path)
    tokens = loaded.convert_ids_to_tokens(loaded(f"<image>\nWhat color is the dot?{suffix} ASSISTANT: red").input_ids)
    assert tokens.count(suffix) == 1 and tokens.count("ASSISTANT:") == 1
    assert tokens[-1] == "▁red"  # the text after a phrase is pre-tokenised as usual
    with pytest.raises(ValueError, match="pass fewer phrases"):
        train_tokenizer(corpus, vocab_size=8, phrases=[f"p{i}" for i in range(6)])
