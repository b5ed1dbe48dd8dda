"""Projector registry: exact names, shapes, parameter names and token counts."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from convllava.models.projectors import PROJECTORS, build_projector, get_projector_spec


def test_mlp2x_gelu_matches_original_layout():
    proj = build_projector("mlp2x_gelu", 3072, 4096)
    assert [type(m) for m in proj] == [nn.Linear, nn.GELU, nn.Linear]
    assert set(dict(proj.named_parameters())) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # mm_projector.{0,2}
    assert proj(torch.zeros(2, 5, 3072)).shape == (2, 5, 4096)


def test_mlp_depths_linear_and_identity():
    assert sum(isinstance(m, nn.Linear) for m in build_projector("mlp3x_gelu", 8, 16)) == 3
    assert build_projector("linear", 8, 16)(torch.zeros(1, 2, 8)).shape == (1, 2, 16)
    x = torch.randn(1, 3, 8)
    assert torch.equal(build_projector("identity", 8, 8)(x), x)
    with pytest.raises(ValueError, match="identity"):
        build_projector("identity", 8, 16)


@pytest.mark.parametrize("name", ["mlp2x_gelu", "linear", "identity"])
def test_token_preserving_projectors_count_grid_cells(name):
    assert get_projector_spec(name).num_tokens(24, 24) == 576
    assert get_projector_spec(name).num_tokens(12, 20) == 240


@pytest.mark.parametrize("name", ["MLP2x_gelu", "mlp2x_gelu_extra", "mlp", "mlp99x_gelu", "xlinear"])
def test_lookup_is_by_exact_name(name):
    assert name not in PROJECTORS
    with pytest.raises(ValueError, match="unknown projector_type"):
        get_projector_spec(name)


def test_norm_mlp_centres_each_channel_and_scales_each_image_as_a_whole():
    proj = build_projector("norm_mlp2x_gelu", 8, 16)
    assert [type(m).__name__ for m in proj] == ["ImageFeatureNorm", "Linear", "GELU", "Linear"]
    assert set(dict(proj.named_parameters())) == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"}
    features = torch.randn(4, 6, 8) * 0.1 + torch.arange(8.0) * 5  # a large constant shared by every position
    features[2, :, 3] = 7.0  # channel 3 is flat in image 2: nothing of that kind is in it
    normed = proj[0](features)
    assert torch.allclose(normed.mean(1), torch.zeros(4, 8), atol=1e-4)
    assert torch.allclose(normed.pow(2).mean((1, 2)), torch.ones(4), atol=5e-3)  # eps aside
    centred = features[1] - features[1].mean(0)
    assert torch.allclose(normed[1, 2], centred[2] / (centred.pow(2).mean() + 1e-5).sqrt(), atol=1e-4)
    # an absent feature stays absent (a per-channel standardisation would blow it up to unit size)
    assert normed[2, :, 3].abs().max() < 1e-4 and normed[2, :, 4].abs().max() > 0.1
    # per image: an image gives the same features alone or beside others, in training mode too
    assert torch.allclose(proj(features[1:2])[0], proj(features)[1], atol=1e-5)
    assert proj(features).shape == (4, 6, 16)


def test_norm_pos_mlp_tells_where_a_token_is():
    proj = build_projector("norm_pos_mlp2x_gelu", 8, 16)
    assert [type(m).__name__ for m in proj] == ["ImageFeatureNorm", "GridPosition", "Linear", "GELU", "Linear"]
    # one object on a 4 x 4 grid, first at the top left, then at the bottom right
    here, there = torch.zeros(1, 16, 8), torch.zeros(1, 16, 8)
    here[0, 0], there[0, 15] = torch.arange(8.0), torch.arange(8.0)
    # with the position term the object's token tells where it is; without it (scale 0), it reads the same
    assert not torch.allclose(proj(here)[0, 0], proj(there)[0, 15], atol=1e-3)
    with torch.no_grad():
        proj[1].scale.zero_()
    assert torch.allclose(proj(here)[0, 0], proj(there)[0, 15], atol=1e-5)
    # the embedding is of normalised image coordinates: the same place has one embedding at every grid size
    two, six = (proj[1].embedding(side, torch.device("cpu"), torch.float32) for side in (2, 6))
    assert torch.allclose(two[0], six[1 * 6 + 1], atol=1e-5) and torch.allclose(two[3], six[4 * 6 + 4], atol=1e-5)
    assert torch.cdist(six, six).add(torch.eye(36)).min() > 0.1  # every token of a grid has its own place
    with pytest.raises(ValueError, match="square grid"):
        proj(torch.zeros(1, 12, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        build_projector("norm_pos_mlp2x_gelu", 6, 16)


class _OriginalPooler(nn.Module):
    """LLaVA-NeXT's `PoolerProjector.forward`, as its code reshapes the tokens (a square grid)."""

    def __init__(self, in_dim, out_dim, hw):
        super().__init__()
        self.hw = hw
        self.conv_pool = nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2)
        self.proj = nn.Sequential(nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x):
        x = x.view(x.shape[0], self.hw, self.hw, -1).permute(0, 3, 1, 2)
        return self.proj(self.conv_pool(x).flatten(2).transpose(1, 2))


class _OriginalLDPv2(nn.Module):
    """MobileVLM V2's `LDPNetV2Projector`: FeatureIRLayer, TokenDownLayer((12, 12)), PosInjectLayer."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.peg = nn.Module()
        self.peg.peg = nn.Sequential(nn.Conv2d(out_dim, out_dim, 3, 1, 1, bias=True, groups=out_dim))

    def forward(self, x):
        x = self.mlp.mlp(x)
        b, n, _ = x.shape
        h = int(n**0.5)
        x = nn.functional.adaptive_avg_pool2d(x.permute(0, 2, 1).reshape(b, -1, h, h), (12, 12))
        x = x.flatten(2).transpose(1, 2)
        cnn = x.transpose(1, 2).reshape(b, x.shape[-1], 12, 12)
        return (self.peg.peg(cnn) + cnn).flatten(2).transpose(1, 2)


class _OriginalFusedLDP(nn.Sequential):
    """Cobra's `FusedLDPProjector.projector`: Linear(C, 4C), GELU, Linear(4C, D), TokenDownLayer((14, 14)),
    PosInjectLayer(D, D), each of the last two reshaping a square of tokens as the original does."""

    def __init__(self, in_dim, out_dim):
        down, peg = nn.Module(), nn.Module()
        down.dwn = nn.Sequential(nn.AdaptiveAvgPool2d((14, 14)))
        peg.peg = nn.Sequential(nn.Conv2d(out_dim, out_dim, 3, 1, 1, bias=True, groups=out_dim))
        super().__init__(nn.Linear(in_dim, 4 * in_dim), nn.GELU(), nn.Linear(4 * in_dim, out_dim), down, peg)

    def forward(self, x):
        x = self[2](self[1](self[0](x)))
        b, n, c = x.shape
        h = int(n**0.5)
        x = self[3].dwn(x.permute(0, 2, 1).reshape(b, -1, h, h)).flatten(2).transpose(1, 2)
        cnn = x.transpose(1, 2).view(b, c, 14, 14)
        return (self[4].peg(cnn) + cnn).flatten(2).transpose(1, 2)


@pytest.mark.parametrize(("name", "original"), [("pooler", lambda: _OriginalPooler(12, 16, 6)),
                                                 ("ldpnetv2", lambda: _OriginalLDPv2(12, 16)),
                                                 ("fused_ldpnet", lambda: _OriginalFusedLDP(12, 16))])  # fmt: skip
def test_grid_projectors_load_the_original_weights_and_match_its_forward(name, original):
    torch.manual_seed(0)
    reference = original()
    for p in reference.parameters():  # away from init, so a swapped weight would show
        nn.init.normal_(p, std=0.3)
    ours = build_projector(name, 12, 16)
    ours.load_state_dict(reference.state_dict())  # strict: the original names, nothing more or less
    features = torch.randn(2, 36, 12)  # a 6 x 6 grid, row-major
    expected = reference(features)
    assert torch.allclose(ours(features, grid=(6, 6)), expected, atol=1e-5)
    assert torch.allclose(ours(features), expected, atol=1e-5)  # without a grid: a square one
    assert expected.shape[1] == get_projector_spec(name).num_tokens(6, 6)


#: MobileVLM's `LDPNetProjector(12 -> 16)` state dict as torchvision / timm name it (printed from the original).
_LDP_KEYS = {"model.mlp.1.weight": (16, 12), "model.mlp.1.bias": (16,), "model.mlp.3.weight": (16, 16),
             "model.mlp.3.bias": (16,)} | {
    f"model.mb_block.{i}.block.{name}": shape for i in (1, 2) for name, shape in (
        ("0.0.weight", (16, 1, 3, 3)), ("0.1.weight", (16,)), ("0.1.bias", (16,)), ("1.fc1.weight", (8, 16, 1, 1)),
        ("1.fc1.bias", (8,)), ("1.fc2.weight", (16, 8, 1, 1)), ("1.fc2.bias", (16,)), ("2.0.weight", (16, 16, 1, 1)),
        ("2.1.weight", (16,)), ("2.1.bias", (16,)))}  # fmt: skip


def _original_ldp(state, x, side):
    """MobileVLM's LDPBlock forward on its state dict: MLP, then torchvision's MobileNetV3 InvertedResidual twice
    (depthwise 3 x 3 + channel LayerNorm + hardswish, SE with hardsigmoid, 1 x 1 + channel LayerNorm; the residual
    at stride 1 only)."""
    f = nn.functional

    def channel_norm(m, prefix):
        normed = f.layer_norm(m.permute(0, 2, 3, 1), (m.shape[1],), state[prefix + ".weight"], state[prefix + ".bias"])
        return normed.permute(0, 3, 1, 2)

    x = f.linear(f.gelu(f.linear(x, state["model.mlp.1.weight"], state["model.mlp.1.bias"])),
                 state["model.mlp.3.weight"], state["model.mlp.3.bias"])  # fmt: skip
    m = x.permute(0, 2, 1).reshape(x.shape[0], -1, side, side)
    for i, stride in ((1, 1), (2, 2)):
        p = f"model.mb_block.{i}.block."
        y = f.conv2d(m, state[p + "0.0.weight"], stride=stride, padding=1, groups=m.shape[1])
        y = f.hardswish(channel_norm(y, p + "0.1"))
        scale = f.relu(f.conv2d(f.adaptive_avg_pool2d(y, 1), state[p + "1.fc1.weight"], state[p + "1.fc1.bias"]))
        y = y * f.hardsigmoid(f.conv2d(scale, state[p + "1.fc2.weight"], state[p + "1.fc2.bias"]))
        y = channel_norm(f.conv2d(y, state[p + "2.0.weight"]), p + "2.1")
        m = m + y if stride == 1 else y
    return m.flatten(2).permute(0, 2, 1)


@pytest.mark.parametrize("side", [6, 7])
def test_ldpnet_has_mobilevlms_names_and_forward(side):
    torch.manual_seed(0)
    ours = build_projector("ldpnet", 12, 16)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == _LDP_KEYS
    with torch.no_grad():
        for p in ours.parameters():  # away from init, so a swapped weight would show
            p.normal_(std=0.3)
    features = torch.randn(2, side * side, 12)
    expected = _original_ldp(ours.state_dict(), features, side)
    assert expected.shape[1] == get_projector_spec("ldpnet").num_tokens(side, side) == ((side + 1) // 2) ** 2
    assert torch.allclose(ours(features, grid=(side, side)), expected, atol=1e-5)


def test_grid_projectors_count_tokens_of_any_grid_and_reject_a_wrong_one():
    pooler, ldp = build_projector("pooler", 8, 16), build_projector("ldpnetv2", 8, 16)
    for grid in [(4, 6), (5, 5), (24, 24)]:
        features = torch.randn(1, grid[0] * grid[1], 8)
        assert pooler(features, grid=grid).shape == (1, get_projector_spec("pooler").num_tokens(*grid), 16)
        assert ldp(features, grid=grid).shape == (1, get_projector_spec("ldpnetv2").num_tokens(*grid), 16)
    assert get_projector_spec("pooler").num_tokens(5, 5) == 4 and get_projector_spec("pooler").num_tokens(24, 24) == 144
    assert get_projector_spec("ldpnetv2").num_tokens(4, 6) == 144
    # a wide grid is read row by row: the pooler's token (r, c) sees rows 2r..2r+1, columns 2c..2c+1 only
    features = torch.zeros(1, 24, 8)
    features[0, 1 * 6 + 4] = 1.0  # row 1, column 4 -> pooled cell (0, 2), token 2
    with torch.no_grad():
        touched = (pooler(features, grid=(4, 6)) - pooler(torch.zeros(1, 24, 8), grid=(4, 6))).abs().sum(-1)[0]
    assert touched.nonzero().flatten().tolist() == [2]
    with pytest.raises(ValueError, match="not a 4 x 4 grid"):
        pooler(torch.zeros(1, 17, 8), grid=(4, 4))
    with pytest.raises(ValueError, match="not a 4 x 4 grid"):
        ldp(torch.zeros(1, 17, 8))  # no grid and not a square: isqrt(17) = 4


def test_mlp_res_projector_has_llava_next_layout_and_numerics():
    proj = build_projector("mlp2x_res2x_gelu", 8, 16)
    assert [type(m).__name__ for m in proj] == ["Linear", "GELU", "Linear", "SimpleResBlock", "SimpleResBlock"]
    names = set(dict(proj.named_parameters()))
    assert {"3.pre_norm.weight", "3.proj.0.weight", "3.proj.2.bias", "4.pre_norm.bias"} <= names
    torch.manual_seed(0)
    for p in proj.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        h = proj[2](nn.functional.gelu(proj[0](x)))
        for block in (proj[3], proj[4]):  # the original adds the *normalised* input back
            normed = nn.functional.layer_norm(h, (16,), block.pre_norm.weight, block.pre_norm.bias)
            h = normed + block.proj[2](nn.functional.gelu(block.proj[0](normed)))
        assert torch.allclose(proj(x), h, atol=1e-5)
    assert get_projector_spec("mlp2x_res2x_gelu").num_tokens(24, 24) == 576
    with pytest.raises(ValueError, match=r"k, m = 1\.\.4"):
        get_projector_spec("mlp2x_res9x_gelu")


class _OriginalSPP(nn.Module):
    """Bunny's `SPP.forward` (a square grid from sqrt(N)); all three linears exist in every variant."""

    def __init__(self, in_dim, out_dim, variant):
        super().__init__()
        self.variant = variant
        self.linear_0, self.linear_1 = nn.Linear(in_dim, in_dim), nn.Linear(in_dim, out_dim)
        self.pooling, self.linear_2 = nn.AvgPool2d(kernel_size=2), nn.Linear(out_dim, out_dim)

    def _pool(self, x):
        b, n, _ = x.shape
        h = int(n**0.5)
        return self.pooling(x.permute(0, 2, 1).reshape(b, -1, h, h)).flatten(2).permute(0, 2, 1)

    def forward(self, x):
        if self.variant == "v1":
            return self.linear_2(self._pool(self.linear_1(x)))
        if self.variant == "v2":
            return self._pool(self.linear_2(self.linear_1(x)))
        return self.linear_2(self.linear_1(self._pool(self.linear_0(x))))


class _OriginalFour(nn.Module):
    """Bunny's `Minigpt` / `Vanilla`."""

    def __init__(self, in_dim, out_dim, interleave):
        super().__init__()
        self.interleave = interleave
        self.linear = nn.Linear(in_dim * 4, out_dim)

    def forward(self, x):
        b, n, c = x.shape
        if self.interleave:
            x = x.view(b, n // 4, 4, c).permute(0, 1, 3, 2).contiguous()
        return self.linear(x.reshape(b, n // 4, c * 4))


@pytest.mark.parametrize(("name", "original"), [
    ("spp_v1", lambda: _OriginalSPP(12, 16, "v1")), ("spp_v2", lambda: _OriginalSPP(12, 16, "v2")),
    ("spp_v3", lambda: _OriginalSPP(12, 16, "v3")), ("minigpt", lambda: _OriginalFour(12, 16, False)),
    ("vanilla", lambda: _OriginalFour(12, 16, True))])  # fmt: skip
def test_bunny_connectors_load_the_original_weights_and_match_its_forward(name, original):
    torch.manual_seed(0)
    reference = original()
    for p in reference.parameters():
        nn.init.normal_(p, std=0.3)
    ours = build_projector(name, 12, 16)
    ours.load_state_dict(reference.state_dict())  # strict
    features = torch.randn(2, 36, 12)
    with torch.no_grad():
        expected = reference(features)
        assert torch.allclose(ours(features, grid=(6, 6)), expected, atol=1e-5)
    assert expected.shape[1] == get_projector_spec(name).num_tokens(6, 6) == 9


def test_four_token_merges_differ_and_reject_a_count_not_divisible_by_four():
    minigpt, vanilla = build_projector("minigpt", 2, 3), build_projector("vanilla", 2, 3)
    vanilla.load_state_dict(minigpt.state_dict())
    x = torch.randn(1, 8, 2)
    with torch.no_grad():  # the same weights read the channels in another order
        assert not torch.allclose(minigpt(x), vanilla(x))
    with pytest.raises(ValueError, match="3 x 3 grid does not divide"):
        get_projector_spec("minigpt").num_tokens(3, 3)
    with pytest.raises(ValueError, match="does not divide"):
        vanilla(torch.zeros(1, 9, 2))


class _NanoVLMProjector(nn.Module):
    """nanoVLM's `ModalityProjector` (square grids only), as its code folds the tokens."""

    def __init__(self, in_dim, out_dim, factor):
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(in_dim * factor**2, out_dim, bias=False)

    def forward(self, x):
        bsz, seq, dim = x.shape
        side, s = int(seq**0.5), self.factor
        x = x.view(bsz, side, side, dim).reshape(bsz, side // s, s, side // s, s, dim)
        return self.proj(x.permute(0, 1, 3, 2, 4, 5).reshape(bsz, (side // s) ** 2, dim * s * s))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pixel_shuffle_matches_nanovlm_and_folds_blocks_of_any_grid(factor):
    torch.manual_seed(0)
    reference = _NanoVLMProjector(8, 16, factor)
    ours = build_projector(f"pixel_shuffle{factor}x", 8, 16)
    ours.load_state_dict(reference.state_dict())  # strict: `proj.weight` only
    side = 3 * factor
    features = torch.randn(2, side * side, 8)
    assert torch.allclose(ours(features, grid=(side, side)), reference(features), atol=1e-6)
    assert get_projector_spec(f"pixel_shuffle{factor}x").num_tokens(side, 2 * side) == 18
    # a wide grid: output token (r, c) holds exactly the tokens of block rows r*f.., columns c*f..
    grid = (factor, 2 * factor)
    marked = torch.zeros(1, grid[0] * grid[1], 8)
    marked[0, (factor - 1) * grid[1] + factor] = 1.0  # last row of the block, first column of block (0, 1)
    with torch.no_grad():
        touched = ours(marked, grid=grid).abs().sum(-1)[0]
    assert touched.nonzero().flatten().tolist() == [1]
    with pytest.raises(ValueError, match=f"multiple of {factor}"):
        get_projector_spec(f"pixel_shuffle{factor}x").num_tokens(side + 1, side)


class _TinyLLaVAResampler(nn.Module):
    """TinyLLaVA's `PerceiverResampler` (OpenFlamingo's), its forward written out with einsum as the original."""

    def __init__(self, in_dim, dim, num_queries, depth):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_queries, dim))
        self.linear = nn.Linear(in_dim, dim)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attention = nn.Module()
            attention.norm_media, attention.norm_latents = nn.LayerNorm(dim), nn.LayerNorm(dim)
            attention.to_q = nn.Linear(dim, 512, bias=False)
            attention.to_kv = nn.Linear(dim, 1024, bias=False)
            attention.to_out = nn.Linear(512, dim, bias=False)
            ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim, bias=False), nn.GELU(),
                               nn.Linear(4 * dim, dim, bias=False))  # fmt: skip
            self.layers.append(nn.ModuleList([attention, ff]))
        self.norm = nn.LayerNorm(dim)

    @staticmethod
    def _attend(a, x, latents):  # x: (b, 1, n1, D), latents: (b, 1, n2, D)
        x, latents = a.norm_media(x), a.norm_latents(latents)
        q = a.to_q(latents)
        k, v = a.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (8, 64)).permute(0, 3, 1, 2, 4) for t in (q, k, v))  # b h t n d
        sim = torch.einsum("... i d, ... j d -> ... i j", q * 64**-0.5, k)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        out = torch.einsum("... i j, ... j d -> ... i d", attn, v)
        return a.to_out(out.permute(0, 2, 3, 1, 4).flatten(-2))

    def forward(self, x):
        x = self.linear(x).unsqueeze(1)
        latents = self.latents[None, None].expand(x.shape[0], 1, -1, -1)
        for attention, ff in self.layers:
            latents = self._attend(attention, x, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents).squeeze(1)


@pytest.mark.parametrize(("name", "queries", "depth"), [("resampler", 128, 3), ("resampler_q16_l2", 16, 2)])
def test_resampler_loads_tinyllavas_weights_and_matches_its_forward(name, queries, depth):
    torch.manual_seed(0)
    reference = _TinyLLaVAResampler(12, 32, queries, depth)
    with torch.no_grad():
        for p in reference.parameters():  # away from init, so a swapped weight would show
            p.normal_(std=0.3)
    ours = build_projector(name, 12, 32)
    ours.load_state_dict(reference.state_dict())  # strict: the original names
    for grid in ((6, 6), (3, 7)):  # any number of image tokens
        features = torch.randn(2, grid[0] * grid[1], 12)
        with torch.no_grad():
            expected = reference(features)
            assert torch.allclose(ours(features, grid=grid), expected, atol=1e-5)
        assert expected.shape[1] == queries == get_projector_spec(name).num_tokens(*grid)
    with pytest.raises(ValueError, match=re.escape("resampler_q{q}_l{l} is registered")):
        get_projector_spec("resampler_q100_l2")


def test_fused_gelu_mlp_has_prismatics_layout():
    torch.manual_seed(0)
    ours = build_projector("fused_gelu_mlp", 8, 16)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        "0.weight": (32, 8), "0.bias": (32,), "2.weight": (16, 32), "2.bias": (16,), "4.weight": (16, 16),
        "4.bias": (16,)}  # fmt: skip
    x = torch.randn(2, 5, 8)
    f = nn.functional
    expected = ours[4](f.gelu(ours[2](f.gelu(ours[0](x)))))
    assert torch.equal(ours(x), expected) and get_projector_spec("fused_gelu_mlp").num_tokens(3, 4) == 12


def _reference_c_abstractor(state, x, side, q, depth):
    """Honeybee's C-Abstractor written out with torch functions on timm's parameter names: x + pos_emb, two
    RegStages (conv1 -> LN+SiLU, depthwise conv2 -> LN+SiLU, SE, conv3 -> LN, + shortcut, SiLU) around an average
    pool to sqrt(q) x sqrt(q), then Linear, SiLU, Linear."""
    f = nn.functional

    def conv_norm(prefix, h, groups=1, act=True):
        weight = state[f"{prefix}.conv.weight"]
        h = f.conv2d(h, weight, padding=weight.shape[-1] // 2, groups=groups)
        h = f.layer_norm(
            h.permute(0, 2, 3, 1), (h.shape[1],), state[f"{prefix}.bn.weight"], state[f"{prefix}.bn.bias"], 1e-5
        )
        h = h.permute(0, 3, 1, 2)
        return f.silu(h) if act else h

    def stage(prefix, h):
        for b in range(1, depth + 1):
            p = f"{prefix}.b{b}"
            out = conv_norm(f"{p}.conv2", conv_norm(f"{p}.conv1", h), groups=state[f"{p}.conv2.conv.weight"].shape[0])
            se = f.conv2d(f.silu(f.conv2d(out.mean((2, 3), keepdim=True), state[f"{p}.se.fc1.weight"], state[f"{p}.se.fc1.bias"])),
                          state[f"{p}.se.fc2.weight"], state[f"{p}.se.fc2.bias"])  # fmt: skip
            out = conv_norm(f"{p}.conv3", out * torch.sigmoid(se), act=False)
            shortcut = conv_norm(f"{p}.downsample", h, act=False) if f"{p}.downsample.conv.weight" in state else h
            h = f.silu(out + shortcut)
        return h

    b, _, c = x.shape
    h = (x + state["pos_emb"]).transpose(1, 2).reshape(b, c, side, side)
    h = stage("net.2", f.adaptive_avg_pool2d(stage("net.0", h), int(q**0.5)))
    h = h.flatten(2).transpose(1, 2)
    return f.linear(f.silu(f.linear(h, state["readout.0.weight"], state["readout.0.bias"])), state["readout.2.weight"],
                    state["readout.2.bias"])  # fmt: skip


def test_c_abstractor_has_honeybees_timm_names_and_matches_its_forward():
    from convllava.models.c_abstractor import CAbstractor

    torch.manual_seed(0)
    ours = CAbstractor(12, 16, (6, 6), num_queries=9, depth=2, hidden=8).eval()
    for p in ours.parameters():  # away from init (LayerNorm ones / zeros), so a swapped weight would show
        nn.init.normal_(p, std=0.3)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    # timm 1.0.31's RegStage(2, 12, 8, act_layer=SiLU, norm_layer=LayerNorm2d): SE width round(0.25 * block input)
    assert shapes["pos_emb"] == (1, 36, 12)
    assert shapes["net.0.b1.conv1.conv.weight"] == (8, 12, 1, 1) and shapes["net.0.b1.conv2.conv.weight"] == (
        8,
        1,
        3,
        3,
    )
    assert shapes["net.0.b1.se.fc1.weight"] == (3, 8, 1, 1) and shapes["net.0.b2.se.fc1.weight"] == (2, 8, 1, 1)
    assert (
        shapes["net.0.b1.downsample.conv.weight"] == (8, 12, 1, 1) and "net.0.b2.downsample.conv.weight" not in shapes
    )
    assert "net.2.b1.downsample.conv.weight" not in shapes and shapes["readout.2.weight"] == (16, 16)
    assert {k.split(".", 3)[-1] for k in shapes if k.startswith("net.0.b1.")} == {
        "conv1.conv.weight", "conv1.bn.weight", "conv1.bn.bias", "conv2.conv.weight", "conv2.bn.weight",
        "conv2.bn.bias", "se.fc1.weight", "se.fc1.bias", "se.fc2.weight", "se.fc2.bias", "conv3.conv.weight",
        "conv3.bn.weight", "conv3.bn.bias", "downsample.conv.weight", "downsample.bn.weight", "downsample.bn.bias"}  # fmt: skip
    x = torch.randn(2, 36, 12)
    with torch.no_grad():
        got = ours(x, grid=(6, 6))
        expected = _reference_c_abstractor(ours.state_dict(), x, 6, 9, 2)
    assert got.shape == (2, 9, 16) and torch.allclose(got, expected, atol=1e-5)


def test_c_abstractor_registry_token_counts_and_errors():
    assert [
        get_projector_spec(n).num_tokens(24, 24) for n in ("c_abstractor", "c_abstractor_q64", "c_abstractor_q256")
    ] == [144, 64, 256]
    proj = build_projector("c_abstractor_q64", 8, 16, input_grid=(4, 4))
    assert proj.pos_emb.shape == (1, 16, 8) and proj.readout[0].in_features == 1024  # Honeybee's hidden width
    assert proj(torch.randn(1, 16, 8), grid=(4, 4)).shape == (1, 64, 16)
    with pytest.raises(ValueError, match=r"learned for a 4 x 4 grid, got a 4 x 8 grid of 32 visual tokens"):
        proj(torch.randn(1, 32, 8), grid=(4, 8))
    with pytest.raises(ValueError, match=r"learned for a 4 x 4 grid, got a 2 x 8 grid of 16 visual tokens"):
        proj(torch.randn(1, 16, 8), grid=(2, 8))  # the count matches; the places do not
    with pytest.raises(ValueError, match="pass input_grid"):
        build_projector("c_abstractor", 8, 16)
