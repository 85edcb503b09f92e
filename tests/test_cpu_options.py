"""The CPU-scale options of the embedded recipe (all off in the paper preset): members-only segment embeddings and
their multi-label loss, group-usage and logit-spread terms, group-token and value-path init, local first stage."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from groupvit.model.loss import GroupViTLoss, group_usage_loss, multi_label_loss
from groupvit.model.config import LossConfig
from test_model_grouping import tiny_model


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


def test_group_pooled_multi_label_equals_loop_reference():
    torch.manual_seed(0)
    b, g, k, d, scale = 3, 4, 2, 8, torch.tensor(5.0)
    groups, prompts = _unit(b, g, d), _unit(b, k, d)
    got = multi_label_loss(groups.mean(1), prompts, scale, "mean_log", group_embed=groups)
    flat = prompts.reshape(b * k, d)
    sim = torch.stack([torch.stack([max(groups[i, h] @ flat[n] for h in range(g)) for n in range(b * k)])
                       for i in range(b)])  # image i vs prompt n: its best group
    log_p = F.log_softmax(scale * sim, dim=1)
    image_side = -sum(log_p[i, i * k + j] for i in range(b) for j in range(k)) / (b * k)
    text_side = F.cross_entropy(scale * sim.t(), torch.arange(b).repeat_interleave(k))
    assert torch.allclose(got, 0.5 * (image_side + text_side), atol=1e-5)


def test_group_pooling_with_one_group_is_the_image_loss():
    image, prompts = _unit(4, 8), _unit(4, 3, 8)
    plain = multi_label_loss(image, prompts, torch.tensor(3.0))
    pooled = multi_label_loss(image, prompts, torch.tensor(3.0), group_embed=image[:, None])
    assert torch.allclose(plain, pooled, atol=1e-6)


def test_group_usage_is_zero_when_spread_and_one_when_collapsed():
    spread = torch.full((2, 4, 10), 0.25)
    collapsed = torch.zeros(2, 4, 10)
    collapsed[:, 0] = 1.0
    assert group_usage_loss([spread]).item() == 0.0
    assert abs(group_usage_loss([collapsed]).item() - 1.0) < 1e-4


def test_loss_asks_model_for_groups_only_when_needed():
    assert GroupViTLoss(LossConfig()).model_kwargs == {"with_groups": False}
    assert GroupViTLoss(LossConfig(multi_label_pooling="members")).model_kwargs == {"with_groups": True}
    assert GroupViTLoss(LossConfig(group_usage_weight=0.1)).model_kwargs == {"with_groups": True}
    assert GroupViTLoss(LossConfig(assign_logit_spread_weight=0.1)).model_kwargs == {"with_groups": True}
    with pytest.raises(ValueError, match="multi_label_pooling"):
        GroupViTLoss(LossConfig(multi_label_pooling="groups"))


def test_forward_with_groups_feeds_the_group_losses():
    torch.manual_seed(0)
    model = tiny_model().eval()
    image = torch.randn(2, 3, 32, 32)
    tokens = model.tokenizer(["a star", "a ring"])
    prompts = model.tokenizer(["a photo of a star.", "a ring", "a photo of a ring.", "a star"]).view(2, 2, -1)
    out = model(image, tokens, prompts, with_groups=True)
    assert out["group_embed"].shape == (2, 4, model.cfg.proj_dim)
    assert torch.allclose(out["image_embed"], model.encode_image(image), atol=1e-5)
    losses = GroupViTLoss(LossConfig(group_usage_weight=0.5, assign_logit_spread_weight=0.1))(**out)
    assert set(losses) == {"loss", "contrastive", "multi_label", "group_usage", "assign_logit_spread"}
    losses["loss"].backward()
    assert model.image_encoder.stages[0].group_token.grad is not None


def test_bag_of_words_text_tower_ignores_order_and_padding_and_round_trips(tmp_path):
    from groupvit.model import ModelConfig, TextEncoderConfig, build_model, load_model, save_checkpoint
    from test_model_grouping import image_cfg

    model = build_model(ModelConfig(image=image_cfg(), text=TextEncoderConfig(kind="bow", width=32, context_length=16),
                                    proj_hidden=32, proj_dim=8)).eval()
    a, b = model.tokenizer(["a red star", "star red a"])
    feats = model.text_encoder(torch.stack([a, b]))
    assert torch.allclose(feats[0], feats[1], atol=1e-6)
    path = save_checkpoint(tmp_path / "bow.pt", model)
    again = load_model(path)
    assert torch.allclose(again.encode_text(a[None]), model.encode_text(a[None]), atol=1e-6)


def test_identity_value_init_makes_a_segment_the_mean_of_its_tokens():
    """assign_value_init=identity: the assignment's value path starts as the identity, so a new segment token is the
    (eps-damped) weighted mean of the tokens assigned to it instead of a ~0.5%-magnitude projection of them."""
    from test_model_grouping import image_cfg

    from groupvit.model.image_encoder import GroupViTImageEncoder

    torch.manual_seed(0)
    paper = GroupViTImageEncoder(image_cfg()).eval().stages[0].grouping.assign
    cpu = GroupViTImageEncoder(image_cfg(assign_value_init="identity")).eval().stages[0].grouping.assign
    groups, tokens = torch.randn(2, 8, 32), torch.randn(2, 64, 32)
    out, _, hard = cpu(groups, tokens)  # eval mode: the one-hot partition, no noise
    expected = cpu.proj.bias + (hard / (hard.sum(-1, keepdim=True) + cpu.assign_eps)) @ (tokens + cpu.v_proj.bias)
    torch.testing.assert_close(out, expected)
    assert paper(groups, tokens)[0].norm() < 0.05 * out.norm()


def test_group_token_init_std_options_set_the_starting_spread():
    from test_model_grouping import image_cfg

    from groupvit.model.image_encoder import GroupViTImageEncoder

    torch.manual_seed(0)
    paper = GroupViTImageEncoder(image_cfg(depths=[1, 1, 1], num_group_tokens=[32, 16, 0], num_output_groups=[32, 16]))
    wide = GroupViTImageEncoder(image_cfg(depths=[1, 1, 1], num_group_tokens=[32, 16, 0], num_output_groups=[32, 16],
                                          group_token_init_std=1.0, projected_group_token_init_std=0.5))
    assert 0.015 < paper.stages[0].group_token.std() < 0.025 and paper.stages[1].group_token.abs().max() == 0
    assert 0.8 < wide.stages[0].group_token.std() < 1.0 and 0.4 < wide.stages[1].group_token.std() < 0.55


def test_identical_group_tokens_give_copies_unless_groups_have_their_own_embedding():
    """The mechanism behind the groups' collapse: the token-mixing MLP + LayerNorm map identical group tokens to
    +/- copies of one vector (every output group is then the same query); group_query_embed keeps them distinct."""
    from groupvit.model.grouping import GroupingBlock
    from groupvit.model.image_encoder import init_vit_weights

    torch.manual_seed(0)
    same = torch.randn(1, 1, 32).expand(2, 8, 32)
    for option, low, high in ((False, 0.95, 1.01), (True, 0.0, 0.5)):
        block = GroupingBlock(32, 2, num_group_tokens=8, num_output_groups=4, group_query_embed=option)
        block.apply(init_vit_weights)  # as the encoder initialises it
        queries = F.normalize(block.norm_post_tokens(
            block.mlp_inter(block.norm_tokens(same)) + (0 if block.group_query is None else block.group_query)), dim=-1)
        cos = (queries @ queries.transpose(1, 2)).abs()[:, ~torch.eye(4, dtype=torch.bool)]
        assert low < cos.mean() < high, (option, cos.mean())


def test_member_embeds_depend_only_on_each_segments_own_pixels():
    """image.member_embeds: a segment's members-only embedding is its pixels' tokens pooled by the hard partition.
    Changing the image where one segment lives moves the official segment tokens of OTHER segments (their queries
    saw the whole image) but not the other segments' member embeddings, as long as the partition stays."""
    from groupvit.model.image_encoder import GroupViTImageEncoder
    from test_model_grouping import image_cfg

    torch.manual_seed(0)
    enc = GroupViTImageEncoder(image_cfg(member_embeds=True, depths=[0, 1, 1])).eval()
    image = torch.randn(1, 3, 32, 32)
    out = enc(image)
    assert out.member_tokens is not None and out.member_tokens.shape == out.tokens.shape
    grid_owner = out.hard_assignments[1].argmax(1)[0][out.hard_assignments[0].argmax(1)[0]]  # [64] final segment
    # with no blocks before the first grouping, a member embedding is sum(LN(its patch tokens)) / (n + 1)
    patches, _ = enc.embed(image)
    target = int(grid_owner.bincount().argmax())
    members = enc.member_norm(patches[0, grid_owner == target])
    expected = members.sum(0) / (len(members) + 1.0)
    torch.testing.assert_close(out.member_tokens[0, target], expected, atol=1e-5, rtol=1e-4)
    # perturb the pixels of the target segment's patches only (8x8 grid, 4 px patches)
    mask = (grid_owner == target).view(8, 8).repeat_interleave(4, 0).repeat_interleave(4, 1)
    changed = enc(image + 1e-3 * torch.randn_like(image) * mask)
    others = [g for g in range(out.tokens.shape[1]) if g != target and (grid_owner == g).any()]
    assert all(torch.equal(a, b) for a, b in zip(changed.hard_assignments, out.hard_assignments))  # same partition
    assert others, "the partition has a single segment"
    assert (changed.member_tokens[0, others] - out.member_tokens[0, others]).abs().max() < 1e-6
    assert (changed.tokens[0, others] - out.tokens[0, others]).abs().max() > 1e-5


def test_member_pooled_multi_label_trains_the_member_path_and_readout_uses_it():
    from groupvit.evaluation.grouping import ModelGrouper

    torch.manual_seed(0)
    model = tiny_model(member_embeds=True).train()
    loss_fn = GroupViTLoss(LossConfig(multi_label_pooling="members"))
    assert loss_fn.model_kwargs == {"with_groups": True}
    image = torch.randn(2, 3, 32, 32)
    tokens = model.tokenizer(["a star", "a ring"])
    prompts = model.tokenizer(["a photo of a star.", "a photo of a ring."]).view(2, 1, -1)
    out = model(image, tokens, prompts, **loss_fn.model_kwargs)
    assert out["member_embed"].shape == out["group_embed"].shape
    loss_fn(**out)["multi_label"].backward()
    assert model.image_encoder.member_norm.weight.grad.abs().sum() > 0
    model.eval()
    official, members = ModelGrouper(model, "hard")(image), ModelGrouper(model, "hard", "members")(image)
    assert torch.equal(official.pixel_to_group, members.pixel_to_group)
    assert not torch.allclose(official.group_embeds, members.group_embeds)
    with pytest.raises(ValueError, match="member_embeds"):
        ModelGrouper(tiny_model().eval(), "hard", "members")(image)
    with pytest.raises(ValueError, match="member_embeds"):
        GroupViTLoss(LossConfig(multi_label_pooling="members"))(**tiny_model().train()(
            image, tokens, prompts, with_groups=True))
    # a plain ViT baseline trained under the same loss settings has no segments: it falls back to its image embedding
    vit = tiny_model(grouping=False, depths=[1], num_group_tokens=[0], num_output_groups=[]).train()
    terms = GroupViTLoss(LossConfig(multi_label_pooling="members"))(**vit(image, tokens, prompts, with_groups=True))
    plain = GroupViTLoss(LossConfig())(**vit(image, tokens, prompts))
    assert torch.isfinite(terms["loss"])
    assert torch.allclose(terms["multi_label"], plain["multi_label"], atol=1e-5)


def test_member_embeds_pool_the_tokens_the_first_grouping_merged():
    """A members-only embedding pools, over the final partition, the tokens the first grouping block merged (after
    that stage's blocks), not the raw patch embedding."""
    from groupvit.model.image_encoder import GroupViTImageEncoder
    from test_model_grouping import image_cfg

    torch.manual_seed(0)
    enc = GroupViTImageEncoder(image_cfg(member_embeds=True)).eval()  # depths [1, 1, 1]
    merged = []
    enc.stages[0].grouping.register_forward_hook(lambda mod, args, out: merged.append(args[0]))
    image = torch.randn(2, 3, 32, 32)
    out = enc(image)
    composed = out.hard_assignments[1] @ out.hard_assignments[0]  # [B, G, N] one-hot final partition
    weights = composed / (composed.sum(-1, keepdim=True) + 1.0)
    torch.testing.assert_close(out.member_tokens, weights @ enc.member_norm(merged[0]), atol=1e-5, rtol=1e-4)
    patches, _ = enc.embed(image)
    assert not torch.allclose(out.member_tokens, weights @ enc.member_norm(patches), atol=1e-3)


def test_first_stage_token_radius_keeps_image_tokens_local_before_the_first_grouping():
    """first_stage_token_radius=1: a first-stage token's output depends on its 3x3 token neighbourhood only, so
    changing a far corner of the image leaves it unchanged; with global attention (official) it moves."""
    from groupvit.model.image_encoder import GroupViTImageEncoder
    from test_model_grouping import image_cfg

    torch.manual_seed(0)
    image = torch.randn(1, 3, 32, 32)  # 8x8 grid of 4 px patches
    far = image.clone()
    far[..., 24:, 24:] += 1.0  # the bottom-right 2x2 tokens
    moved = {}
    for radius in (0, 1):
        enc = GroupViTImageEncoder(image_cfg(first_stage_token_radius=radius, depths=[2, 1, 1])).eval()
        seen = []
        enc.stages[0].grouping.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        enc(image), enc(far)
        moved[radius] = (seen[1][0, 0] - seen[0][0, 0]).abs().max().item()  # the top-left token
    assert moved[1] < 1e-6 < moved[0]


def test_assign_logit_spread_pulls_back_a_saturated_assignment_that_group_usage_cannot():
    """The plateau state: every token's softmax saturated on one group. The group-usage term is at its maximum there
    but passes ~0 gradient to the logits; the logit-spread term equals the logits' variance across groups and its
    gradient grows with them. On near-uniform assignments it is ~0, so it leaves learning runs alone."""
    from groupvit.model.loss import assign_logit_spread_loss

    torch.manual_seed(0)
    base = torch.zeros(2, 8, 16)
    base[:, 0] = 1.0  # group 0 wins every token
    for scale, low, high in ((0.01, 0.0, 1e-3), (40.0, 150.0, 250.0)):
        logits = (base * scale + 0.001 * torch.randn_like(base)).requires_grad_()
        spread = assign_logit_spread_loss([logits.softmax(dim=1)])
        torch.testing.assert_close(spread, logits.detach().var(dim=1, unbiased=False).mean(), rtol=1e-3, atol=1e-6)
        assert low <= spread.item() <= high
    usage = group_usage_loss([logits.softmax(dim=1)])
    assert usage.item() > 0.99  # fully collapsed...
    (usage_grad,) = torch.autograd.grad(usage, logits)
    (spread_grad,) = torch.autograd.grad(assign_logit_spread_loss([logits.softmax(dim=1)]), logits)
    assert usage_grad.abs().max() < 1e-8 < 1e-3 < spread_grad.abs().max()  # ...yet only the spread term can act
    loss = GroupViTLoss(LossConfig(assign_logit_spread_weight=0.5))
    assert loss.model_kwargs["with_groups"]
    emb = F.normalize(torch.randn(2, 8), dim=-1)
    terms = loss(emb, emb, torch.tensor(10.0), soft_assignments=[logits.softmax(dim=1)])
    torch.testing.assert_close(terms["loss"] - terms["contrastive"] - terms["multi_label"],
                               0.5 * terms["assign_logit_spread"])
