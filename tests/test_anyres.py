"""LLaVA-1.6 AnyRes: tiles, token counts and the `spatial_unpad` merge, checked against transformers' LlavaNext
(its image processor and its model, with the same weights)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
)

from conftest import CORPUS
from convllava import ConvLlavaConfig, ConvLlavaForConditionalGeneration, ConvLlavaProcessor
from convllava.data.collator import ConversationCollator
from convllava.models.anyres import anyres_token_count, select_best_resolution
from convllava.models.freezing import set_trainable, trainable_summary
from convllava.models.zoo import CheckpointError
from convllava.processing import train_tokenizer
from convllava.processing.image_processing import ConvLlavaImageProcessor
from convllava.training.config import TrainableParts
from convllava.training.stages import apply_trainable_parts
from helpers import random_image

TILE = 56  # a 4 x 4 CLIP patch grid per tile
PINPOINTS = [[56, 112], [112, 56], [112, 112], [168, 56], [56, 168]]  # (height, width), LLaVA-1.6's shapes
IMAGE_TOKEN = 99
SIZES = [(50, 90), (80, 40), (60, 60), (30, 200)]  # (height, width)


def _configs():
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=TILE, patch_size=14)  # fmt: skip
    text = LlamaConfig(vocab_size=100, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4)  # fmt: skip
    return vision, text


@pytest.fixture(scope="module")
def pair():
    """A tiny transformers LlavaNext and our model with its weights."""
    vision, text = _configs()
    torch.manual_seed(0)
    reference = LlavaNextForConditionalGeneration(LlavaNextConfig(
        vision_config=vision, text_config=text, image_grid_pinpoints=PINPOINTS, image_token_index=IMAGE_TOKEN,
        vision_feature_layer=-2, vision_feature_select_strategy="default")).eval()  # fmt: skip
    with torch.no_grad():
        reference.model.image_newline.normal_()
    config = ConvLlavaConfig(vision_config=vision, text_config=text, vision_tower_type="clip", vision_feature_layer=-2,
                             projector_type="mlp2x_gelu", image_size=TILE, image_resize_mode="anyres",
                             image_grid_pinpoints=PINPOINTS, image_token_id=IMAGE_TOKEN)  # fmt: skip
    ours = ConvLlavaForConditionalGeneration(config).eval()
    state = {}
    for key, value in reference.state_dict().items():
        key = key.replace("model.vision_tower.vision_model.", "model.vision_tower.")  # the prefix varies by version
        if key.startswith("model.vision_tower.post_layernorm") or key.endswith("position_ids"):
            continue  # never run (layer -2) / rebuilt, not loaded
        key = key.replace("multi_modal_projector.linear_1", "projector.0").replace(
            "multi_modal_projector.linear_2", "projector.2"
        )
        state[key] = value
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing)
    return reference, ours


def test_best_resolution_follows_the_original_rule():
    assert select_best_resolution(50, 90, PINPOINTS) == (56, 112)  # wide: one row of two tiles
    assert select_best_resolution(80, 40, PINPOINTS) == (112, 56)
    assert select_best_resolution(30, 200, PINPOINTS) == (56, 168)
    assert select_best_resolution(60, 60, PINPOINTS) == (112, 112)  # the most of the image kept, then least waste
    with pytest.raises(ValueError, match="empty"):
        select_best_resolution(60, 60, [])


def test_tiles_equal_transformers_llava_next_image_processor():
    ours = ConvLlavaImageProcessor(size=TILE, resize_mode="anyres", grid_pinpoints=PINPOINTS)
    theirs = LlavaNextImageProcessorPil(size={"shortest_edge": TILE}, crop_size={"height": TILE, "width": TILE},
                                        image_grid_pinpoints=PINPOINTS)  # fmt: skip
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(SIZES)]
    got = ours(images)
    expected = theirs(images, return_tensors="pt")
    assert got["image_sizes"].tolist() == [list(s) for s in SIZES] == expected["image_sizes"].tolist()
    start = 0
    for i, (h, w) in enumerate(SIZES):
        rows, cols = (s // TILE for s in select_best_resolution(h, w, PINPOINTS))
        n = 1 + rows * cols
        assert torch.allclose(got["pixel_values"][start : start + n], expected["pixel_values"][i, :n], atol=1e-5), i
        start += n
    assert start == got["pixel_values"].shape[0]


def test_model_equals_transformers_llava_next(pair):
    reference, ours = pair
    processor = ConvLlavaImageProcessor(size=TILE, resize_mode="anyres", grid_pinpoints=PINPOINTS)
    for i, (h, w) in enumerate(SIZES):
        inputs = processor([random_image(h, w, seed=10 + i)])
        n = anyres_token_count(h, w, PINPOINTS, TILE, 4)
        assert n == ours.model.num_image_tokens(h, w)
        ids = torch.tensor([[1, 5, 6] + [IMAGE_TOKEN] * n + [7, 8, 9]])
        with torch.no_grad():
            got = ours(input_ids=ids, pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"]).logits
            expected = reference(input_ids=ids, pixel_values=inputs["pixel_values"][None],
                                 image_sizes=inputs["image_sizes"]).logits  # fmt: skip
        assert torch.allclose(got, expected, atol=1e-4), (h, w)


def test_processor_counts_tokens_and_a_model_round_trips(pair, tokenizer, tmp_path):
    _, ours = pair
    config = ConvLlavaConfig.from_dict({**ours.config.to_dict(), "image_token_id": 512,
                                        "text_config": {**ours.config.text_config.to_dict(), "vocab_size": 600}})  # fmt: skip
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    processor = ConvLlavaProcessor.from_model_config(config, tokenizer)
    images = [random_image(50, 90, seed=1), random_image(80, 40, seed=2)]
    batch = processor(text=["USER: <image>\nwhat? ASSISTANT:", "USER: <image>\nand? ASSISTANT:"], images=images)
    counts = (batch["input_ids"] == 512).sum(-1).tolist()
    assert counts == [anyres_token_count(50, 90, PINPOINTS, TILE, 4), anyres_token_count(80, 40, PINPOINTS, TILE, 4)]
    assert batch["pixel_values"].shape[0] == (1 + 2) + (1 + 2)  # base + a 1 x 2 / 2 x 1 grid each
    messages = [{"role": "user", "content": "<image>\nwhat?"}]
    assert (
        processor.count_prompt_tokens(messages, images[:1])
        == processor(text=[processor.apply_chat_template(messages)], images=images[:1])["input_ids"].shape[1]
    )
    # training: examples through the collator, a loss and gradients down to the newline vector
    examples = [processor.build_training_example([*messages, {"role": "assistant", "content": "a cat"}], [image])
                for image in images]  # fmt: skip
    train_batch = ConversationCollator(0)(examples)
    train_batch.pop("skipped")
    model.train()
    model(**train_batch).loss.backward()
    model.eval()
    assert model.model.image_newline.grad is not None and model.model.image_newline.grad.abs().sum() > 0
    # the newline vector trains with the projector, and the frozen / trainable log names it
    set_trainable(model, {"projector": False, "language_model": True})
    assert not model.model.image_newline.requires_grad
    assert trainable_summary(model)["image_newline"] == {"trainable": 0, "total": 48}
    set_trainable(model, {"projector": True})
    assert trainable_summary(model)["image_newline"] == {"trainable": 48, "total": 48}
    apply_trainable_parts(model, TrainableParts(None, projector=False, language_model=True))  # what a stage does
    assert not model.model.image_newline.requires_grad
    apply_trainable_parts(model, TrainableParts(None, projector=True))
    assert model.model.image_newline.requires_grad
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    single = processor(text=["USER: <image>\nwhat? ASSISTANT:"], images=images[:1])
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    again = ConvLlavaProcessor.from_pretrained(tmp_path)(text=["USER: <image>\nwhat? ASSISTANT:"], images=images[:1])
    assert all(torch.equal(single[k], again[k]) for k in ("input_ids", "pixel_values", "image_sizes"))
    with torch.no_grad():
        assert torch.equal(reloaded(**again).logits, model(**single).logits)
    assert torch.equal(reloaded.model.image_newline, model.model.image_newline)


def test_anyres_rejects_bad_settings(tokenizer):
    vision, text = _configs()
    with pytest.raises(ValueError, match="image_grid_pinpoints"):
        ConvLlavaConfig(vision_config=vision, text_config=text, vision_tower_type="clip", image_size=TILE,
                        image_resize_mode="anyres", image_grid_pinpoints=[[56, 100]])  # fmt: skip
    with pytest.raises(ValueError, match="grid_pinpoints"):
        ConvLlavaImageProcessor(size=TILE, resize_mode="anyres")
    anyres = ConvLlavaImageProcessor(size=TILE, resize_mode="anyres", grid_pinpoints=PINPOINTS)
    for pooling in ("pooler", "c_abstractor_q64", "resampler_q16_l1"):  # tile tokens no longer on the tower's grid
        with pytest.raises(ValueError, match=f"token-preserving projector .*not '{pooling}'"):
            ConvLlavaConfig(vision_config=vision, text_config=text, vision_tower_type="clip", image_size=TILE,
                            image_resize_mode="anyres", image_grid_pinpoints=[[TILE, 2 * TILE]], projector_type=pooling)  # fmt: skip
        with pytest.raises(ValueError, match=f"anyres needs a token-preserving projector, not '{pooling}'"):
            ConvLlavaProcessor(anyres, tokenizer, projector_type=pooling).num_image_tokens(50, 90)


def _write_original_llava16(reference, root):
    """transformers' LlavaNext weights written as an original LLaVA-1.6 checkpoint (separate CLIP folder)."""
    reference.model.vision_tower.save_pretrained(root / "clip")
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": TILE, "width": TILE}, "size": {"shortest_edge": TILE}, "resample": 3,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))  # fmt: skip
    renames = {"model.multi_modal_projector.linear_1.": "model.mm_projector.0.",
               "model.multi_modal_projector.linear_2.": "model.mm_projector.2.", "model.language_model.": "model."}  # fmt: skip
    state = {}
    for key, value in reference.state_dict().items():
        if key.startswith("model.vision_tower."):
            continue
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        state[key] = value
    assert "model.image_newline" in state and "lm_head.weight" in state
    ckpt = root / "ckpt"
    ckpt.mkdir()
    torch.save(state, ckpt / "pytorch_model.bin")
    text = reference.config.text_config.to_dict()
    (ckpt / "config.json").write_text(json.dumps({
        **{k: v for k, v in text.items() if k not in ("architectures", "model_type")},
        "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "mm_vision_tower": str(root / "clip"),
        "mm_hidden_size": 32, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch", "image_aspect_ratio": "anyres", "mm_patch_merge_type": "spatial_unpad",
        "image_grid_pinpoints": [[w, h] for h, w in PINPOINTS]}, default=str))  # fmt: skip
    train_tokenizer(CORPUS * 5, vocab_size=90, image_token=False).save_pretrained(ckpt)
    return ckpt


def test_original_llava16_checkpoint_loads_converts_and_exports(pair, tmp_path):
    from convllava.models.zoo import convert_checkpoint, export_checkpoint, load_original

    reference, _ = pair
    ckpt = _write_original_llava16(reference, tmp_path)

    def check(model, processor):
        assert model.config.image_resize_mode == "anyres" and model.config.image_grid_pinpoints == PINPOINTS
        image = random_image(50, 90, seed=5)
        inputs = processor.image_processor([image])
        n = model.model.num_image_tokens(50, 90)
        ours_ids = torch.tensor([[1, 5] + [processor.image_token_id] * n + [7]])
        their_ids = torch.tensor([[1, 5] + [IMAGE_TOKEN] * n + [7]])
        with torch.no_grad():
            got = model(input_ids=ours_ids, **inputs).logits
            expected = reference(input_ids=their_ids, pixel_values=inputs["pixel_values"][None],
                                 image_sizes=inputs["image_sizes"]).logits  # fmt: skip
        assert torch.allclose(got, expected, atol=1e-4)

    check(*load_original(ckpt))
    converted = convert_checkpoint(ckpt, tmp_path / "ours")
    check(
        ConvLlavaForConditionalGeneration.from_pretrained(converted).eval(),
        ConvLlavaProcessor.from_pretrained(converted),
    )
    exported = export_checkpoint(converted, tmp_path / "theirs")
    written = json.loads((exported / "config.json").read_text())
    assert written["image_aspect_ratio"] == "anyres" and written["mm_patch_merge_type"] == "spatial_unpad"
    assert written["image_grid_pinpoints"] == [[w, h] for h, w in PINPOINTS]
    check(*load_original(exported))
    flat = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**flat, "mm_patch_merge_type": "flat"}))
    with pytest.raises(CheckpointError, match="spatial_unpad"):
        load_original(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**flat, "image_grid_pinpoints": "(1x1),...,(3x3)"}))
    with pytest.raises(CheckpointError, match=r"not a list of \[width, height\] pairs"):
        load_original(ckpt)


def test_lora_trains_the_newline_and_saves_resumes_and_merges_it(pair, tokenizer, tmp_path):
    """PEFT's adapter file cannot hold a bare parameter: the newline goes beside it, and resume and merge read it."""
    from safetensors.torch import load_file

    from convllava.training.config import load_train_config
    from convllava.training.lora import EXTRA_TRAINABLES, merge_lora
    from convllava.training.runner import run_training
    from helpers import write_conversation_data

    _, ours = pair
    config = ConvLlavaConfig.from_dict({**ours.config.to_dict(), "image_token_id": 512,
                                        "text_config": {**ours.config.text_config.to_dict(), "vocab_size": 600}})  # fmt: skip
    torch.manual_seed(0)
    ConvLlavaForConditionalGeneration(config).save_pretrained(tmp_path / "base")
    ConvLlavaProcessor.from_model_config(config, tokenizer).save_pretrained(tmp_path / "base")
    initial = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path / "base").model.image_newline.detach()
    data, images = write_conversation_data(tmp_path / "data", n=8)

    def train(steps, resume=False):
        args = [f"model={tmp_path / 'base'}", f"data={data}", f"image_folder={images}", f"output={tmp_path / 'lora'}",
                "lora.enabled=true", "lora.r=4", "lora.alpha=8", "learning_rate=1e-2", "global_batch_size=2",
                "per_device_batch_size=2", "report_to=none", "save_steps=2", f"max_steps={steps}",
                "gradient_checkpointing=false", "warmup_ratio=0"]  # fmt: skip
        return run_training(load_train_config(None, args), resume=resume)

    output = train(2)
    at_2 = load_file(output / "checkpoint-2" / EXTRA_TRAINABLES)["model.image_newline"]
    assert not torch.allclose(at_2, initial)  # it trained
    final = train(3, resume=True)  # one more step from checkpoint-2, which must restore the newline
    after = load_file(final / EXTRA_TRAINABLES)["model.image_newline"]
    assert (after - initial).abs().max() > 2 * (after - at_2).abs().max()  # restored from checkpoint-2, not the base
    merged = ConvLlavaForConditionalGeneration.from_pretrained(merge_lora(final, tmp_path / "merged"))
    assert torch.equal(merged.model.image_newline, after)
