"""ConvLlavaForConditionalGeneration on the tiny preset: splicing, loss, generation, round-trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText

from convllava import ConvLlavaForConditionalGeneration, ConvLlavaModel
from convllava.constants import IGNORE_INDEX
from helpers import random_image


def _prompt(processor, question: str, n_images: int = 1) -> str:
    content = "\n".join(["<image>"] * n_images + [question])
    return processor.apply_chat_template([{"role": "user", "content": content}])


def test_forward_backward_reaches_every_trainable_part(tiny_config, processor, images):
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(tiny_config).train()
    example = processor.build_training_example(
        [{"role": "user", "content": "<image>\nWhat color is the square?"}, {"role": "assistant", "content": "red"}],
        images[:1],
    )
    out = model(
        input_ids=example["input_ids"][None], pixel_values=example["pixel_values"], labels=example["labels"][None]
    )
    assert out.logits.shape == (1, example["input_ids"].numel(), tiny_config.text_config.vocab_size)
    assert out.image_hidden_states.shape == (16, tiny_config.text_config.hidden_size)
    out.loss.backward()
    for part in (model.vision_tower.stages[-1], model.projector, model.language_model.layers[0], model.lm_head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_image_features_land_exactly_on_image_token_positions(tiny_model, processor, images):
    inputs = processor(text=[_prompt(processor, "What is it?")], images=images[:1])
    captured = {}

    def capture(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"]

    hook = tiny_model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            out = tiny_model(**inputs)
    finally:
        hook.remove()
    mask = inputs["input_ids"][0] == tiny_model.config.image_token_id
    assert mask.sum() == 16
    embeds = captured["embeds"][0]
    assert torch.equal(embeds[mask], out.image_hidden_states)
    text_ids = inputs["input_ids"][0][~mask]
    assert torch.equal(embeds[~mask], tiny_model.get_input_embeddings()(text_ids))


def test_loss_ignores_image_positions_and_matches_manual_cross_entropy(tiny_model, processor, images):
    inputs = processor(text=[_prompt(processor, "How many circles?")], images=images[:1])
    ids = inputs["input_ids"]
    with torch.no_grad():
        out = tiny_model(**inputs, labels=ids)  # image ids are out of vocabulary: must be ignored, not crash
    expected_labels = ids.masked_fill(ids == tiny_model.config.image_token_id, IGNORE_INDEX)
    manual = F.cross_entropy(out.logits[0, :-1], expected_labels[0, 1:], ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual, atol=1e-6)


def test_several_images_per_sample_and_text_only_sample_in_one_batch(tiny_model, processor, images):
    prompts = [
        _prompt(processor, "Compare them.", 2),
        _prompt(processor, "No picture here.", 0),
        _prompt(processor, "One."),
    ]
    batch = processor(text=prompts, images=[[images[0], images[1]], [], [images[2]]])
    assert batch["pixel_values"].shape[0] == 3
    assert (batch["input_ids"] == tiny_model.config.image_token_id).sum(-1).tolist() == [32, 0, 16]
    with torch.no_grad():
        logits = tiny_model(**batch).logits
        for row, (prompt, imgs) in enumerate(zip(prompts, [images[:2], [], images[2:]], strict=True)):
            single = processor(text=[prompt], images=imgs or None)
            alone = tiny_model(**single).logits[0, -1]
            assert torch.allclose(logits[row, -1], alone, atol=1e-4), row


def test_wrong_image_count_raises_clear_errors(tiny_model, processor, images):
    with pytest.raises(ValueError, match=r"1 <image> placeholder\(s\) but 2 image\(s\)"):
        processor(text=[_prompt(processor, "Hi")], images=images[:2])
    inputs = processor(text=[_prompt(processor, "Hi")], images=images[:1])
    with pytest.raises(ValueError, match=r"hold 16 image tokens but 2 image\(s\) give 32 visual features"):
        tiny_model(input_ids=inputs["input_ids"], pixel_values=torch.cat([inputs["pixel_values"]] * 2))
    with pytest.raises(ValueError, match="no pixel_values were given"):
        tiny_model(input_ids=inputs["input_ids"])


def _greedy(model, inputs, **kwargs):
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=0, **kwargs)
    return out[:, inputs["input_ids"].shape[1] :]


def test_generate_with_and_without_images_and_kv_cache_equals_no_cache(tiny_model, processor, images):
    with_image = processor(text=[_prompt(processor, "What color?")], images=images[:1])
    text_only = processor(text=["USER: What color? ASSISTANT:"])
    for inputs in (with_image, text_only):
        cached = _greedy(tiny_model, inputs)
        assert cached.shape == (1, 8)
        assert torch.equal(cached, _greedy(tiny_model, inputs, use_cache=False))


def test_batched_left_padded_generation_equals_unbatched(tiny_model, processor, images):
    prompts = [
        _prompt(processor, "What color is the square?"),
        _prompt(processor, "How many?"),
        "USER: Describe the picture in detail please. ASSISTANT:",
    ]
    imgs = [[images[0]], [images[1]], []]
    batch = processor(text=prompts, images=imgs)
    lengths = batch["attention_mask"].sum(-1)
    assert len(set(lengths.tolist())) == 3 and batch["attention_mask"][:, 0].tolist() != [1, 1, 1]  # left padded
    batched = _greedy(tiny_model, batch)
    for row, (prompt, img) in enumerate(zip(prompts, imgs, strict=True)):
        single = _greedy(tiny_model, processor(text=[prompt], images=img or None))
        assert torch.equal(batched[row], single[0]), row


def test_native_mode_encodes_each_image_at_its_own_size(tiny_config, tokenizer):
    from convllava import ConvLlavaProcessor

    config = tiny_config.__class__.from_dict(tiny_config.to_dict())
    config.image_resize_mode = "native"
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    processor = ConvLlavaProcessor.from_model_config(config, tokenizer)
    wide, tall = random_image(256, 512, seed=4), random_image(400, 256, seed=5)
    batch = processor(text=["<image> a", "<image> b"], images=[wide, tall])
    assert batch["image_sizes"].tolist() == [[256, 512], [384, 256]]
    assert (batch["input_ids"] == config.image_token_id).sum(-1).tolist() == [4 * 8, 6 * 4]
    with torch.no_grad():
        features = model.get_image_features(batch["pixel_values"], batch["image_sizes"])
        alone = model.get_image_features(processor.image_processor(tall)["pixel_values"])
        logits = model(**batch).logits
    assert [f.shape[0] for f in features] == [32, 24]
    assert torch.allclose(features[1], alone[0], atol=1e-5)
    assert torch.isfinite(logits).all()


def test_save_load_round_trip_gives_equal_logits(tiny_model, processor, images, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    inputs = processor(text=[_prompt(processor, "What is it?")], images=images[:1])
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, ConvLlavaForConditionalGeneration)
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path), ConvLlavaForConditionalGeneration)
    assert isinstance(AutoModel.from_pretrained(tmp_path), ConvLlavaModel)
    with torch.no_grad():
        assert torch.equal(tiny_model(**inputs).logits, reloaded(**inputs).logits)


def test_sdpa_attention_is_the_default(tiny_model):
    assert tiny_model.config.text_config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    "projector_type", ["pooler", "ldpnetv2", "ldpnet", "pixel_shuffle2x", "resampler_q16_l1", "fused_ldpnet"]
)
def test_token_pooling_projectors_run_the_whole_model(tiny_config, tokenizer, images, projector_type, tmp_path):
    from convllava import ConvLlavaProcessor

    config = tiny_config.__class__.from_dict({**tiny_config.to_dict(), "projector_type": projector_type})
    config.image_resize_mode = "native"
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    processor = ConvLlavaProcessor.from_model_config(config, tokenizer)
    wide = random_image(256, 512, seed=4)  # a 4 x 8 feature grid
    expected = {"pooler": 2 * 4, "ldpnetv2": 144, "ldpnet": 2 * 4, "pixel_shuffle2x": 2 * 4, "resampler_q16_l1": 16,
                "fused_ldpnet": 196}[projector_type]  # fmt: skip
    assert processor.num_image_tokens(256, 512) == model.model.num_image_tokens(256, 512) == expected
    inputs = processor(text=[_prompt(processor, "What is it?")], images=[wide])
    assert (inputs["input_ids"] == config.image_token_id).sum() == expected
    with torch.no_grad():
        assert [f.shape[0] for f in model.get_image_features(inputs["pixel_values"], inputs["image_sizes"])] == [
            expected
        ]
    assert torch.equal(_greedy(model, inputs), _greedy(model, inputs, use_cache=False))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reloaded.config.projector_type == projector_type
    with torch.no_grad():  # equal weights; oneDNN's depthwise convs (ldpnet) may round by memory alignment
        assert torch.allclose(model(**inputs).logits, reloaded(**inputs).logits, atol=1e-5)


def test_c_abstractor_runs_the_whole_model_and_refuses_native_sizes(tiny_config, tokenizer, images, tmp_path):
    from convllava import ConvLlavaProcessor

    config = tiny_config.__class__.from_dict({**tiny_config.to_dict(), "projector_type": "c_abstractor_q64"})
    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(config).eval()
    pos_emb = model.model.projector.pos_emb
    assert pos_emb.shape == (1, 4 * 4, config.vision_hidden_size)  # 256 px -> a 4 x 4 grid
    with torch.no_grad():  # a meta-device load leaves unloaded parameters empty: _init_weights must fill it
        saved = pos_emb.clone()
        pos_emb.fill_(float("nan"))
        model._init_weights(model.model.projector)
        assert torch.isfinite(pos_emb).all() and 0.01 < pos_emb.std() < 0.03  # trunc_normal(std=0.02), as Honeybee
        pos_emb.copy_(saved)
    processor = ConvLlavaProcessor.from_model_config(config, tokenizer)
    assert processor.num_image_tokens(256, 256) == model.model.num_image_tokens(256, 256) == 64
    inputs = processor(text=[_prompt(processor, "What is it?")], images=[images[0]])
    assert (inputs["input_ids"] == config.image_token_id).sum() == 64
    assert torch.equal(_greedy(model, inputs), _greedy(model, inputs, use_cache=False))
    model.save_pretrained(tmp_path)
    reloaded = ConvLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reloaded(**inputs).logits, atol=1e-5)
        with pytest.raises(ValueError, match="learned for a 4 x 4 grid, got a 4 x 8 grid of 32 visual tokens"):
            model.get_image_features(torch.zeros(1, 3, 256, 512))
