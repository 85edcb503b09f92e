"""Losses against naive loop references, weights and forms, and the 2-process (gloo) all-gather path: each rank's loss
and embedding gradients match the single-process loss on the concatenated batch."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from groupvit.model import GroupViTLoss, LossConfig, contrastive_loss, multi_label_loss


def embeds(b: int = 5, k: int = 3, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    norm = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1)  # noqa: E731
    return norm(b, d), norm(b, d), norm(b, k, d), torch.tensor(7.5, dtype=torch.float64)


def naive_contrastive(img, txt, scale):
    b = len(img)
    loss_i = loss_t = 0.0
    for i in range(b):
        row = [float(scale * img[i] @ txt[j]) for j in range(b)]
        loss_i += -(row[i] - math.log(sum(math.exp(v) for v in row)))
        col = [float(scale * txt[i] @ img[j]) for j in range(b)]
        loss_t += -(col[i] - math.log(sum(math.exp(v) for v in col)))
    return 0.5 * (loss_i / b + loss_t / b)


def naive_multi_label(img, prompts, scale, form):
    b, k, _ = prompts.shape
    flat = [(j, kk) for j in range(b) for kk in range(k)]
    loss_i = 0.0
    for i in range(b):
        logits = [float(scale * img[i] @ prompts[j, kk]) for j, kk in flat]
        z = sum(math.exp(v) for v in logits)
        own = [math.exp(logits[n]) / z for n, (j, _) in enumerate(flat) if j == i]
        loss_i += -sum(math.log(p) for p in own) / k if form == "mean_log" else -math.log(sum(own))
    loss_t = 0.0
    for j, kk in flat:
        logits = [float(scale * prompts[j, kk] @ img[i]) for i in range(b)]
        loss_t += -(logits[j] - math.log(sum(math.exp(v) for v in logits)))
    return 0.5 * (loss_i / b + loss_t / (b * k))


def test_contrastive_matches_loop():
    img, txt, _, scale = embeds()
    assert float(contrastive_loss(img, txt, scale)) == pytest.approx(naive_contrastive(img, txt, scale), rel=1e-10)


@pytest.mark.parametrize("form", ["mean_log", "log_sum"])
def test_multi_label_matches_loop(form):
    img, _, prompts, scale = embeds()
    ours = float(multi_label_loss(img, prompts, scale, form))
    assert ours == pytest.approx(naive_multi_label(img, prompts, scale, form), rel=1e-10)


def test_forms_differ_and_k1_coincide():
    img, _, prompts, scale = embeds()
    mean_log = float(multi_label_loss(img, prompts, scale, "mean_log"))
    assert mean_log > float(multi_label_loss(img, prompts, scale, "log_sum"))  # -log sum p <= -mean log p
    one = prompts[:, :1]
    torch.testing.assert_close(
        multi_label_loss(img, one, scale, "mean_log"), multi_label_loss(img, one, scale, "log_sum")
    )


def test_module_weights_terms_and_absent_prompts():
    img, txt, prompts, scale = embeds()
    out = GroupViTLoss(LossConfig(contrastive_weight=0.5, multi_label_weight=2.0))(
        image_embed=img, text_embed=txt, logit_scale=scale, prompt_embed=prompts, multi_label_logit_scale=scale * 2,
        unrelated_key=1,
    )
    assert set(out) == {"loss", "contrastive", "multi_label"}
    torch.testing.assert_close(out["multi_label"], multi_label_loss(img, prompts, scale * 2))
    torch.testing.assert_close(out["loss"], 0.5 * out["contrastive"] + 2.0 * out["multi_label"])
    plain = GroupViTLoss()(image_embed=img, text_embed=txt, logit_scale=scale)
    assert float(plain["multi_label"]) == 0.0 and torch.equal(plain["loss"], plain["contrastive"])
    off = GroupViTLoss(LossConfig(multi_label_weight=0.0))(image_embed=img, text_embed=txt, logit_scale=scale,
                                                     prompt_embed=prompts)
    assert float(off["multi_label"]) == 0.0


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="multi_label_form"):
        GroupViTLoss(LossConfig(multi_label_form="paper"))
    with pytest.raises(ValueError, match="rank"):
        GroupViTLoss(rank=2, world_size=2)
    img, _, prompts, scale = embeds()
    with pytest.raises(ValueError, match=r"\[B, K, D\]"):
        multi_label_loss(img, prompts[:3], scale)


def test_model_output_feeds_loss_and_gradients_reach_scales():
    from groupvit.model import ImageEncoderConfig, ModelConfig, TextEncoderConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        image=ImageEncoderConfig(image_size=16, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=2,
                                 num_group_tokens=[4, 0], num_output_groups=[2], drop_path_rate=0.0),
        text=TextEncoderConfig(width=16, layers=1, heads=2, context_length=12), proj_hidden=32, proj_dim=8,
    )
    model = build_model(cfg).train()
    tok = model.tokenizer(["a cat", "a dog", "a bird"])
    prompts = torch.stack([model.tokenizer(["a photo of a cat.", "cat"]), model.tokenizer(["dog", "dog"]),
                           model.tokenizer(["bird", "a bird"])])
    out = model(torch.randn(3, 3, 16, 16), tok, prompts)
    assert out["prompt_embed"].shape == (3, 2, 8)
    losses = GroupViTLoss(LossConfig())(**out)
    losses["loss"].backward()
    assert model.logit_scale.grad is not None and model.multi_label_logit_scale.grad is not None
    assert model.image_encoder.stages[0].group_token.grad.abs().sum() > 0


# ---- 2 processes ---------------------------------------------------------------------------------------------------
def _rank_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        img, txt, prompts, scale = embeds(b=6, k=2, seed=5)
        per = img.shape[0] // world
        part = slice(rank * per, (rank + 1) * per)
        leaves = [t[part].clone().requires_grad_(True) for t in (img, txt, prompts)]
        scales = [scale.clone().requires_grad_(True), (scale * 1.3).clone().requires_grad_(True)]
        out = GroupViTLoss(LossConfig(multi_label_form="log_sum"), rank=rank, world_size=world)(
            image_embed=leaves[0], text_embed=leaves[1], prompt_embed=leaves[2],
            logit_scale=scales[0], multi_label_logit_scale=scales[1],
        )
        out["loss"].backward()
        torch.save({"loss": out["loss"].detach(), "contrastive": out["contrastive"].detach(),
                    "grads": [t.grad for t in leaves], "scale_grads": [s.grad for s in scales]},
                   f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # no rank may tear the group down while the other still runs a collective
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_all_gather_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    # spawn, not fork: a forked child of a process whose OpenMP pool already ran can deadlock
    mp.spawn(_rank_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]

    img, txt, prompts, scale = embeds(b=6, k=2, seed=5)
    leaves = [t.clone().requires_grad_(True) for t in (img, txt, prompts)]
    scales = [scale.clone().requires_grad_(True), (scale * 1.3).clone().requires_grad_(True)]
    single = GroupViTLoss(LossConfig(multi_label_form="log_sum"))(
        image_embed=leaves[0], text_embed=leaves[1], prompt_embed=leaves[2],
        logit_scale=scales[0], multi_label_logit_scale=scales[1],
    )
    single["loss"].backward()
    # the global loss is the mean of the ranks' losses (equal shards)
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / world, single["loss"].detach())
    torch.testing.assert_close(sum(r["contrastive"] for r in ranks) / world, single["contrastive"].detach())
    # all_gather's backward sums every rank's gradient into the owner: world x the global-mean gradient
    for i, leaf in enumerate(leaves):
        gathered = torch.cat([r["grads"][i] for r in ranks]) / world
        torch.testing.assert_close(gathered, leaf.grad)
    # replicated parameters (the logit scales): DDP's average of the local gradients is the global gradient
    for i, s in enumerate(scales):
        torch.testing.assert_close(sum(r["scale_grads"][i] for r in ranks) / world, s.grad)
