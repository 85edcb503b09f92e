"""Grouping image encoder: shapes for 1- and 2-stage configs, straight-through gradients, Gumbel only in training,
one-hot hard assignments, batch independence in eval, patch-size checks, conv stem, position resampling, SDPA."""
from __future__ import annotations

import pytest
import torch

from groupvit.model import ImageEncoderConfig, ModelConfig, TextEncoderConfig, build_model
from groupvit.model.grouping import AssignAttention, GroupingBlock
from groupvit.model.image_encoder import GroupViTImageEncoder
from groupvit.model.vit import ViTImageEncoder


def image_cfg(**kw) -> ImageEncoderConfig:
    base = dict(image_size=32, patch_size=4, embed_dim=32, depths=[1, 1, 1], num_heads=2,
                num_group_tokens=[8, 4, 0], num_output_groups=[8, 4], drop_path_rate=0.0)
    base.update(kw)
    return ImageEncoderConfig(**base)


def tiny_model(**image_kw) -> torch.nn.Module:
    text = TextEncoderConfig(width=32, layers=1, heads=2, context_length=16)
    return build_model(ModelConfig(image=image_cfg(**image_kw), text=text, proj_hidden=64, proj_dim=16))


@pytest.mark.parametrize(
    "depths,groups,outs,expected",
    [([1, 1, 1], [8, 4, 0], [8, 4], [(8, 64), (4, 8)]),  # 2-stage
     ([2, 1], [16, 0], [4], [(4, 64)])],  # 1-stage: 16 group tokens -> 4 segments by the token-mixing MLP
)
def test_stage_shapes(depths, groups, outs, expected):
    enc = GroupViTImageEncoder(image_cfg(depths=depths, num_group_tokens=groups, num_output_groups=outs)).eval()
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.grid == (8, 8)
    assert [tuple(a.shape[1:]) for a in out.soft_assignments] == expected
    assert out.tokens.shape == (2, expected[-1][0], 32) and out.pooled.shape == (2, 32)
    # soft maps are distributions over groups for every input token
    for soft in out.soft_assignments:
        torch.testing.assert_close(soft.sum(dim=1), torch.ones(2, soft.shape[-1]))


def test_hf_style_output_groups_accepted():
    a = GroupViTImageEncoder(image_cfg(num_output_groups=[8, 4]))
    b = GroupViTImageEncoder(image_cfg(num_output_groups=[8, 4, 4]))
    assert a.state_dict().keys() == b.state_dict().keys()
    with pytest.raises(ValueError, match="num_output_groups"):
        GroupViTImageEncoder(image_cfg(num_output_groups=[8]))
    with pytest.raises(ValueError, match="num_group_tokens"):
        GroupViTImageEncoder(image_cfg(num_group_tokens=[8, 4]))


def test_straight_through_gradient_reaches_group_tokens():
    torch.manual_seed(0)
    assign = AssignAttention(16, hard=True, gumbel=False).train()
    groups = torch.randn(2, 4, 16, requires_grad=True)
    tokens = torch.randn(2, 10, 16)
    out, soft, hard = assign(groups, tokens)
    (out * torch.randn_like(out)).sum().backward()
    assert groups.grad is not None and groups.grad.abs().sum() > 0
    # the forward used the exact one-hot: recompute the output from the detached hard map
    weights = hard / (hard.sum(-1, keepdim=True) + assign.assign_eps)
    torch.testing.assert_close(out, assign.proj(weights @ assign.v_proj(tokens)))


def test_hard_assignment_is_one_hot_per_token_and_gumbel_only_in_training():
    torch.manual_seed(0)
    block = GroupingBlock(16, 2, num_group_tokens=6, num_output_groups=3, hard=True, gumbel=True)
    x, g = torch.randn(2, 12, 16), torch.randn(2, 6, 16)
    block.eval()
    out1, soft1, hard1 = block(x, g)
    out2, soft2, hard2 = block(x, g)
    torch.testing.assert_close(out1, out2)  # no noise in eval
    assert set(hard1.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hard1.sum(dim=1), torch.ones(2, 12))  # each token in exactly one group
    torch.testing.assert_close(hard1, torch.nn.functional.one_hot(soft1.argmax(1), 3).transpose(1, 2).float())
    block.train()
    torch.manual_seed(1)
    out_a, soft_a, _ = block(x, g)
    torch.manual_seed(2)
    out_b, soft_b, _ = block(x, g)
    assert not torch.allclose(out_a, out_b)  # Gumbel noise in training
    torch.testing.assert_close(soft_a, soft_b)  # the returned soft map is noise-free
    torch.manual_seed(1)
    torch.testing.assert_close(block(x, g)[0], out_a)  # seeded noise is reproducible


def test_soft_mode_and_no_gumbel():
    torch.manual_seed(0)
    block = GroupingBlock(16, 2, 6, 3, hard=False, gumbel=False).train()
    x, g = torch.randn(2, 12, 16), torch.randn(2, 6, 16)
    torch.testing.assert_close(block(x, g)[0], block(x, g)[0])  # deterministic without Gumbel
    assert isinstance(block.assign.noise, torch.nn.Identity) and isinstance(block.assign.discretize, torch.nn.Identity)


def test_eval_is_independent_of_batch_composition():
    torch.manual_seed(0)
    model = tiny_model().eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together = model.encode_image_groups(images)
        alone = [model.encode_image_groups(images[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(together.image_embed, torch.cat([a.image_embed for a in alone]), atol=1e-5, rtol=0)
    torch.testing.assert_close(together.pixel_to_group, torch.cat([a.pixel_to_group for a in alone]), atol=1e-5, rtol=0)


def test_grouping_output_maps():
    torch.manual_seed(0)
    model = tiny_model().eval()
    with torch.no_grad():
        out = model.encode_image_groups(torch.randn(2, 3, 32, 32))
    assert out.pixel_to_group.shape == (2, 4, 8, 8) and out.group_embeds.shape == (2, 4, 16)
    assert [tuple(s.shape) for s in out.stage_assignments] == [(2, 8, 8, 8), (2, 4, 8, 8)]
    torch.testing.assert_close(out.pixel_to_group.sum(1), torch.ones(2, 8, 8))  # products of stochastic maps
    torch.testing.assert_close(out.pixel_to_group_hard.sum(1), torch.ones(2, 8, 8))
    assert set(out.pixel_to_group_hard.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(out.group_embeds.norm(dim=-1), torch.ones(2, 4))


def test_bad_image_size_is_refused():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        model.encode_image(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        model.encode_image(torch.randn(3, 32, 32))


def test_other_resolution_resamples_positions():
    torch.manual_seed(0)
    enc = GroupViTImageEncoder(image_cfg()).eval()
    out = enc(torch.randn(1, 3, 48, 40))  # 12 x 10 grid from an 8 x 8 embedding
    assert out.grid == (12, 10) and out.soft_assignments[0].shape == (1, 8, 120)


def test_conv_stem_reaches_the_same_grid():
    enc = GroupViTImageEncoder(image_cfg(stem="conv", stem_channels=[8, 16])).eval()
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.grid == (8, 8)
    assert any("stem" in k for k in enc.state_dict())
    with pytest.raises(ValueError, match="divisible"):
        GroupViTImageEncoder(image_cfg(stem="conv", stem_channels=[8, 16, 32]))


def test_plain_vit_returns_patch_tokens():
    cfg = image_cfg(grouping=False)
    enc = ViTImageEncoder(cfg).eval()
    assert len(enc.blocks) == 3
    out = enc(torch.randn(2, 3, 32, 32))
    assert out.tokens.shape == (2, 64, 32) and out.grid == (8, 8) and out.soft_assignments == []
    model = tiny_model(grouping=False).eval()
    tokens, grid = model.encode_image_tokens(torch.randn(2, 3, 32, 32))
    assert tokens.shape == (2, 64, 32) and grid == (8, 8)
    assert model.project_image(tokens).shape == (2, 64, 16)
    assert not hasattr(model, "encode_image_groups")
    assert not hasattr(tiny_model(), "encode_image_tokens")


def test_sdpa_and_eager_attention_agree():
    torch.manual_seed(0)
    model = tiny_model().eval()
    images = torch.randn(2, 3, 32, 32)
    tokens = model.tokenizer(["a red circle", "two blue squares"])
    from groupvit.model.attention import set_attn_impl

    with torch.no_grad():
        a = model(images, tokens)
        set_attn_impl(model, "eager")
        b = model(images, tokens)
    for key in ("image_embed", "text_embed"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)


def test_drop_path_rises_linearly():
    enc = GroupViTImageEncoder(image_cfg(drop_path_rate=0.1, depths=[2, 1, 1]))
    rates = [float(getattr(b.drop_path1, "drop_prob", 0.0)) for s in enc.stages for b in s.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)


@pytest.mark.parametrize(
    "change,match",
    [(dict(image=image_cfg(num_heads=3)), "num_heads"),
     (dict(image=image_cfg(image_size=30)), "multiple of patch_size"),
     (dict(image=image_cfg(num_group_tokens=[0, 0, 0], num_output_groups=[])), "at least one stage"),
     (dict(text=TextEncoderConfig(vocab_size=1000)), "vocab_size"),
     (dict(attn_impl="flash"), "attn_impl")],
)
def test_bad_configs_name_the_field(change, match):
    import dataclasses

    with pytest.raises(ValueError, match=match):
        build_model(dataclasses.replace(ModelConfig(image=image_cfg()), **change))
