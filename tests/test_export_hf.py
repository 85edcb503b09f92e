"""`groupvit export`: our checkpoints as Hugging Face GroupViTModel folders, the image side as a torch.export program.

Round trip ours -> HF folder -> ours at atol 1e-5: transformers' own GroupViTModel.from_pretrained must give our
image and text embeddings, logits and every stage's assignment map, and load_model(folder) must give back our
weights. Models HF cannot express are refused naming the option; the torch.export program must reproduce
encode_image_groups, CPU options included.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GroupViTModel as HFGroupViT  # noqa: E402

from groupvit.cli import main  # noqa: E402
from groupvit.model import (  # noqa: E402
    ImageEncoderConfig, ModelConfig, TextEncoderConfig, build_model, load_model, save_checkpoint,
)
from groupvit.model.export_hf import ExportError, export_hf, hf_unsupported  # noqa: E402

ATOL = 1e-5
CAPTIONS = ["a photo of a cat", "two dogs playing on a beach at sunset", "", "a red star"]
ARCHS = {
    "two_stage": ModelConfig(
        image=ImageEncoderConfig(image_size=32, patch_size=4, embed_dim=48, depths=[1, 1, 1], num_heads=3,
                                 num_group_tokens=[16, 4, 0], num_output_groups=[16, 4]),
        text=TextEncoderConfig(context_length=24, width=32, layers=2, heads=2), proj_dim=16, proj_hidden=64,
    ),
    # one grouping stage, no q/k/v bias in the blocks, other widths / heads / MLP ratios
    "one_stage_no_bias": ModelConfig(
        image=ImageEncoderConfig(image_size=24, patch_size=4, embed_dim=32, depths=[2, 1], num_heads=2,
                                 num_group_tokens=[8, 0], num_output_groups=[4], qkv_bias=False, mlp_ratio=2.0,
                                 assign_mlp_ratio=[1.0, 2.0]),
        text=TextEncoderConfig(context_length=16, width=64, layers=1, heads=4), proj_dim=8, proj_hidden=32,
    ),
}


def trained_like(cfg: ModelConfig, seed: int = 0, logit_scale: float = 3.0):
    """A model with every parameter and BN statistic moved off its init, so that no mapping hides behind zeros."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        model.logit_scale.fill_(logit_scale)
    return model


def inputs(cfg: ModelConfig, tokenizer):
    torch.manual_seed(1)
    side = cfg.image.image_size
    return torch.randn(4, 3, side, side), tokenizer(CAPTIONS)


def assert_same(ours, other, images, tokens):
    """Our model vs another of ours: embeddings, logits and per-stage soft and hard maps."""
    with torch.no_grad():
        a, b = ours(images, tokens), other(images, tokens)
        ea, eb = ours.image_encoder(images), other.image_encoder(images)
    for key in ("image_embed", "text_embed", "logit_scale"):
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=0)
    for x, y in zip(ea.soft_assignments + ea.hard_assignments, eb.soft_assignments + eb.hard_assignments):
        torch.testing.assert_close(x, y, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", list(ARCHS))
def test_round_trip_ours_hf_ours(name, tmp_path):
    cfg = ARCHS[name]
    ours = trained_like(cfg)
    ckpt = save_checkpoint(tmp_path / "model.pt", ours, step=7)
    folder, comparison = export_hf(ckpt, tmp_path / "hf")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert comparison.max_diff() <= ATOL and comparison.hard_agreement == 1.0

    hf = HFGroupViT.from_pretrained(folder).eval()
    images, tokens = inputs(cfg, ours.tokenizer)
    with torch.no_grad():
        ref = hf(input_ids=tokens, pixel_values=images, output_attentions=True)
        out = ours(images, tokens)
        enc = ours.image_encoder(images)
    torch.testing.assert_close(ref.image_embeds, out["image_embed"], atol=ATOL, rtol=0)
    torch.testing.assert_close(ref.text_embeds, out["text_embed"], atol=ATOL, rtol=0)
    logits = out["logit_scale"] * out["image_embed"] @ out["text_embed"].t()
    torch.testing.assert_close(ref.logits_per_image, logits, atol=ATOL, rtol=0)
    assert len(ref.vision_model_output.attentions) == len(enc.soft_assignments)
    for theirs, soft, hard in zip(ref.vision_model_output.attentions, enc.soft_assignments, enc.hard_assignments):
        torch.testing.assert_close(theirs, soft, atol=ATOL, rtol=0)
        assert torch.equal(theirs.argmax(1), hard.argmax(1))

    back = load_model(folder)
    assert_same(ours, back, images, tokens)
    mine, theirs = ours.state_dict(), back.state_dict()
    extra = set(theirs) - set(mine)  # HF's projections always have a bias: zeros for a model built without one
    assert set(mine) <= set(theirs) and all(k.endswith("attn.qkv.bias") and not theirs[k].any() for k in extra)
    assert bool(extra) == (not cfg.image.qkv_bias)
    changed = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert changed == ["multi_label_logit_scale"]  # not in HF's model: refilled from logit_scale_init


def test_logit_scale_above_the_clamp_is_stored_clamped(tmp_path):
    cfg = ARCHS["two_stage"]
    ours = trained_like(cfg, logit_scale=5.0)  # exp = 148, ours clamps at 100, HF does not clamp
    folder, _ = export_hf(save_checkpoint(tmp_path / "m.pt", ours), tmp_path / "hf")
    hf = HFGroupViT.from_pretrained(folder)
    assert float(hf.logit_scale.detach().exp()) == pytest.approx(100.0)
    images, tokens = inputs(cfg, ours.tokenizer)
    assert_same(ours, load_model(folder), images, tokens)


@pytest.mark.parametrize("change, field", [
    (dict(image=dict(stem="conv", stem_channels=[8])), "stem"),
    (dict(image=dict(group_query_embed=True)), "group_query_embed"),
    (dict(image=dict(member_embeds=True)), "member_embeds"),
    (dict(image=dict(first_stage_token_radius=1)), "first_stage_token_radius"),
    (dict(image=dict(assign_logit_scale=4.0)), "assign_logit_scale"),
    (dict(image=dict(hard_assignment=False)), "hard_assignment"),
    (dict(image=dict(grouping=False, depths=[2], num_group_tokens=[0], num_output_groups=[])), "grouping"),
    (dict(text=dict(kind="bow")), "text.kind"),
    (dict(text=dict(vocab_size=50000)), "vocab_size"),
    (dict(image=dict(depths=[1, 1, 1], num_group_tokens=[16, 4, 0], num_output_groups=[8, 4])), "num_output_groups"),
])
def test_models_hf_cannot_express_are_refused(change, field, tmp_path):
    base = ARCHS["two_stage"]
    cfg = dataclasses.replace(base, image=dataclasses.replace(base.image, **change.get("image", {})),
                              text=dataclasses.replace(base.text, **change.get("text", {})))
    reasons = hf_unsupported(cfg)
    assert len(reasons) == 1 and field in reasons[0]
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model(cfg))
    with pytest.raises(ExportError, match="cannot express"):
        export_hf(ckpt, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_training_settings_do_not_block_the_export():
    cfg = ARCHS["two_stage"]
    cfg = dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, drop_path_rate=0.3, gumbel=False,
                                                             group_token_init_std=1.0, assign_value_init="identity"))
    assert hf_unsupported(cfg) == []
    assert hf_unsupported(ModelConfig()) == []  # the paper's model


def test_cli_export_hf_and_refusals(tmp_path, capsys):
    ours = trained_like(ARCHS["two_stage"])
    ckpt = save_checkpoint(tmp_path / "model.pt", ours)
    assert main(["export", str(ckpt), str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert "from_pretrained" in capsys.readouterr().out
    assert HFGroupViT.from_pretrained(tmp_path / "hf") is not None
    # a second export into the same folder needs --overwrite
    assert main(["export", str(ckpt), str(tmp_path / "hf"), "--format", "hf"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(ckpt), str(tmp_path / "hf"), "--format", "hf", "--overwrite"]) == 0
    # the default preset's CPU model: every reason named
    cpu = ModelConfig(image=ImageEncoderConfig(image_size=32, patch_size=8, stem="conv", stem_channels=[8, 16],
                                               embed_dim=32, depths=[1, 1], num_heads=2, num_group_tokens=[4, 0],
                                               num_output_groups=[2], member_embeds=True),
                      text=TextEncoderConfig(kind="bow", width=32), proj_dim=8, proj_hidden=16)
    bad = save_checkpoint(tmp_path / "cpu.pt", build_model(cpu))
    assert main(["export", str(bad), str(tmp_path / "hf_cpu"), "--format", "hf"]) == 1
    err = capsys.readouterr().err
    assert "model.image.stem='conv'" in err and "member_embeds" in err and "model.text.kind='bow'" in err
    assert not (tmp_path / "hf_cpu").exists()


def test_torch_export_program_matches_the_model(tmp_path):
    from groupvit.model.export_image import PROGRAM_FILE, PROGRAM_INFO

    cpu = ModelConfig(image=ImageEncoderConfig(image_size=32, patch_size=8, stem="conv", stem_channels=[8, 16],
                                               embed_dim=32, depths=[1, 1, 1], num_heads=2, num_group_tokens=[8, 4, 0],
                                               num_output_groups=[8, 4], member_embeds=True, group_query_embed=True,
                                               first_stage_token_radius=1),
                      text=TextEncoderConfig(kind="bow", width=32), proj_dim=8, proj_hidden=16)
    model = trained_like(cpu)
    ckpt = save_checkpoint(tmp_path / "cpu.pt", model)
    assert main(["export", str(ckpt), str(tmp_path / "prog"), "--format", "torch-export", "--image-size", "48"]) == 0
    program = torch.export.load(tmp_path / "prog" / PROGRAM_FILE).module()
    info = (tmp_path / "prog" / PROGRAM_INFO).read_text()
    assert '"member_embeds"' in info and "48" in info
    images = torch.randn(5, 3, 48, 48)  # a batch size the export never saw
    with torch.no_grad():
        ref = model.encode_image_groups(images)
        got = program(images)
    names = ["image_embed", "group_embeds", "pixel_to_group", "pixel_to_group_hard", "member_embeds"]
    for name, value in zip(names, got, strict=True):
        torch.testing.assert_close(value, getattr(ref, name), atol=ATOL, rtol=0)
    assert got[2].shape[-2:] == (6, 6) and math.isclose(float(got[3].sum(1).mean()), 1.0)


def test_an_export_that_fails_its_check_leaves_the_old_folder_and_no_temporary(tmp_path):
    """The folder takes its name only after the check: a failed export keeps what was there and leaves no .tmp."""
    from groupvit.atomic import sha256_file
    from groupvit.model.export_image import PROGRAM_INFO, export_image_program

    ckpt = save_checkpoint(tmp_path / "model.pt", trained_like(ARCHS["two_stage"]))
    out, _ = export_hf(ckpt, tmp_path / "hf")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ExportError, match="differs from ours"):
        export_hf(ckpt, out, overwrite=True, atol=-1.0)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # an HF folder as the source: the program records the sha256 of the folder's weight file
    prog = export_image_program(out, tmp_path / "prog")
    info = json.loads((prog / PROGRAM_INFO).read_text())
    assert info["source_sha256"] == sha256_file(out / "model.safetensors")
