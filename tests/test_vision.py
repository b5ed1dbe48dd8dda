"""The ConvNeXt vision tower: numerics against transformers' ConvNextModel, added stages, freezing,
gradient checkpointing."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import ConvNextConfig, ConvNextModel

from convllava.models.vision import ConvNextVisionTower, add_convnext_stages


def _config(stages: int = 5) -> ConvNextConfig:
    return ConvNextConfig(
        num_stages=stages,
        depths=[1, 1, 2, 1, 2][:stages],
        hidden_sizes=[8, 16, 32, 64, 128][:stages],
        layer_scale_init_value=1e-6,
    )


def _tower_from(reference: ConvNextModel) -> ConvNextVisionTower:
    tower = ConvNextVisionTower(copy.deepcopy(reference.config))
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("layernorm.")}
    tower.load_state_dict(state, strict=True)  # same parameter names as ConvNextModel, minus the final norm
    return tower.eval()


def test_tower_equals_raw_last_stage_of_convnextmodel_flattened_row_major():
    torch.manual_seed(0)
    reference = ConvNextModel(_config()).eval()
    with torch.no_grad():
        reference.encoder.stages[-1].layers[0].layer_scale_parameter.fill_(0.5)  # make stage 5 matter
    tower = _tower_from(reference)
    pixels = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        expected = reference(pixels, output_hidden_states=True).hidden_states[-1]  # (B, C, 2, 3), no final norm
        features = tower(pixels)
    assert expected.shape == (2, 128, 2, 3)
    assert features.shape == (2, 6, 128)
    assert torch.equal(features, expected.permute(0, 2, 3, 1).reshape(2, 6, 128))
    assert torch.equal(features[:, 1], expected[:, :, 0, 1])  # raster order: row 0, column 1
    assert tower.feature_grid(128, 192) == (2, 3) and tower.stride == 64


def test_tower_rejects_a_config_whose_stage_count_disagrees():
    config = ConvNextConfig(depths=[1] * 5, hidden_sizes=[8, 16, 32, 64, 128])  # num_stages defaults to 4
    with pytest.raises(ValueError, match="num_stages"):
        ConvNextVisionTower(config)


def test_add_stage_appends_default_initialised_near_identity_stage():
    torch.manual_seed(0)
    pretrained = ConvNextModel(_config(stages=4)).eval()
    tower = _tower_from(pretrained)
    pixels = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        before = tower.forward_feature_map(pixels)
    add_convnext_stages(tower, depths=[2], widths=[128])

    config = tower.config
    assert config.num_stages == 5 and config.depths[-1] == 2 and config.hidden_sizes[-1] == 128
    assert config.stage_names[-1] == "stage5" and config.out_features == ["stage5"]
    stage = tower.encoder.stages[4]
    conv = stage.downsampling_layer[1]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (64, 128, (2, 2), (2, 2))
    for block in stage.layers:
        assert torch.all(block.layer_scale_parameter == 1e-6)
        # PyTorch default init (kaiming-uniform, a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not normal(0.02)
        bound = 1 / math.sqrt(block.pwconv1.in_features)
        weight = block.pwconv1.weight
        assert weight.abs().max() <= bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert all(p.requires_grad for p in stage.parameters())

    with torch.no_grad():
        after = tower.forward_feature_map(pixels)
        downsampled = conv(stage.downsampling_layer[0](before))
    assert after.shape == (1, 128, 2, 2)
    assert torch.allclose(after, downsampled, atol=1e-4)  # blocks start near identity

    reloaded = ConvNextModel(copy.deepcopy(config)).eval()  # the mutated config describes the new tower
    missing, unexpected = reloaded.load_state_dict(tower.state_dict(), strict=False)
    assert set(missing) == {"layernorm.weight", "layernorm.bias"} and not unexpected
    with torch.no_grad():
        assert torch.equal(reloaded(pixels, output_hidden_states=True).hidden_states[-1], after)


def test_unfreeze_from_stage_index():
    tower = ConvNextVisionTower(_config())
    assert tower.unfreeze_stages(2) == [2, 3, 4]
    assert not any(p.requires_grad for p in tower.embeddings.parameters())
    for index, stage in enumerate(tower.stages):
        assert all(p.requires_grad == (index >= 2) for p in stage.parameters())
    with pytest.raises(ValueError, match=r"stages 0\.\.4"):
        tower.unfreeze_stages(5)
    tower.freeze()
    assert not any(p.requires_grad for p in tower.parameters())


def test_gradient_checkpointing_covers_the_tower_and_keeps_gradients(tiny_config):
    from convllava import ConvLlavaForConditionalGeneration

    torch.manual_seed(0)
    model = ConvLlavaForConditionalGeneration(tiny_config).train()
    n_image = tiny_config.image_token_id
    input_ids = torch.tensor([[1, 5, 6] + [n_image] * 16 + [7, 8, 9]])
    pixels = torch.randn(1, 3, 256, 256)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(input_ids=input_ids, pixel_values=pixels, labels=input_ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    tower = model.model.vision_tower
    assert tower.gradient_checkpointing
    calls = []
    original = tower._gradient_checkpointing_func
    tower._gradient_checkpointing_func = lambda fn, *a, **k: calls.append(fn) or original(fn, *a, **k)
    checkpointed = grads()
    assert len(calls) == sum(tiny_config.vision_config.depths)  # every ConvNeXt block is checkpointed
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name
