"""Equivalence with the Hugging Face port, and the official (NVlabs) key mapping.

A randomly initialised transformers GroupViTModel (built offline from a GroupViTConfig, parameters perturbed so that
zero-initialised group tokens and unit norms do not hide mistakes, BN running statistics randomised) is converted into
our model; image/text embeddings, logits, segment tokens and every stage's assignment maps must agree (eval mode,
atol 1e-4) for two architectures. The NVlabs path is checked on a state dict in the official naming, made here by
inverting the renames of transformers' convert_groupvit_nvlab_to_hf script (fused qkv / in_proj, Conv1d heads).
"""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GroupViTConfig  # noqa: E402
from transformers import GroupViTModel as HFGroupViT  # noqa: E402

from groupvit.model import (  # noqa: E402
    ClipBpeTokenizer, build_model, checkpoint_filter_fn, infer_model_config, load_model, model_config_from_hf,
)
from groupvit.model.convert_nvlabs import convert_nvlabs_state_dict  # noqa: E402

ATOL = 1e-4
ARCHS = {
    # 2 stages, [16, 4] groups, 64 patch tokens
    "two_stage": dict(
        vision=dict(hidden_size=48, intermediate_size=192, depths=[1, 1, 1], num_hidden_layers=3,
                    num_group_tokens=[16, 4, 0], num_output_groups=[16, 4, 4], num_attention_heads=3,
                    image_size=32, patch_size=4),
        text=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=24),
    ),
    # 1 stage, 8 group tokens -> 4 segments by the token-mixing MLP, other depths / widths / heads
    "one_stage": dict(
        vision=dict(hidden_size=32, intermediate_size=64, depths=[2, 1], num_hidden_layers=3,
                    num_group_tokens=[8, 0], num_output_groups=[4, 4], num_attention_heads=2,
                    image_size=24, patch_size=4),
        text=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                  max_position_embeddings=16),
    ),
}
CAPTIONS = ["a photo of a cat", "two dogs playing on a beach at sunset", "", "a red star"]


def make_hf(name: str, seed: int = 0) -> tuple[HFGroupViT, GroupViTConfig]:
    torch.manual_seed(seed)
    arch = ARCHS[name]
    config = GroupViTConfig(text_config=arch["text"], vision_config=arch["vision"], projection_dim=16,
                            projection_intermediate_dim=64)
    hf = HFGroupViT(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in hf.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        hf.logit_scale.fill_(3.0)
    return hf, config


def ours_from_hf(hf: HFGroupViT, config: GroupViTConfig):
    model = build_model(model_config_from_hf(config)).eval()
    model.load_state_dict(checkpoint_filter_fn(hf.state_dict(), model), strict=True)
    return model


def inputs(config: GroupViTConfig, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    side = size or config.vision_config.image_size
    tokens = ClipBpeTokenizer(config.text_config.max_position_embeddings)(CAPTIONS)
    return torch.randn(4, 3, side, side), tokens


def assert_same_outputs(ours, hf: HFGroupViT, config: GroupViTConfig) -> None:
    images, tokens = inputs(config)
    with torch.no_grad():
        ref = hf(input_ids=tokens, pixel_values=images, output_attentions=True)
        out = ours(images, tokens)
        enc = ours.image_encoder(images)
    torch.testing.assert_close(out["image_embed"], ref.image_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(out["text_embed"], ref.text_embeds, atol=ATOL, rtol=0)
    logits = out["logit_scale"] * out["image_embed"] @ out["text_embed"].t()
    torch.testing.assert_close(logits, ref.logits_per_image, atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.tokens, ref.vision_model_output.last_hidden_state, atol=ATOL, rtol=0)
    stages = ref.vision_model_output.attentions
    assert len(stages) == len(enc.soft_assignments) >= 1
    for theirs, soft, hard in zip(stages, enc.soft_assignments, enc.hard_assignments):
        torch.testing.assert_close(soft, theirs, atol=ATOL, rtol=0)
        one_hot = torch.nn.functional.one_hot(theirs.argmax(1), theirs.shape[1]).transpose(1, 2).float()
        torch.testing.assert_close(hard, one_hot)


@pytest.mark.parametrize("name", list(ARCHS))
def test_hf_weights_give_hf_outputs(name):
    hf, config = make_hf(name)
    assert_same_outputs(ours_from_hf(hf, config), hf, config)


def test_hf_position_interpolation_matches():
    hf, config = make_hf("two_stage")
    ours = ours_from_hf(hf, config)
    images, _ = inputs(config, size=48)
    vision = hf.vision_model  # its forward does not pass interpolate_pos_encoding on: run its parts
    with torch.no_grad():
        hidden = vision.embeddings(images, interpolate_pos_encoding=True)
        hidden = vision.layernorm(vision.encoder(hidden, return_dict=True).last_hidden_state)
        ref = torch.nn.functional.normalize(hf.visual_projection(hidden.mean(dim=1)), dim=-1)
        mine = ours.encode_image(images)
    torch.testing.assert_close(mine, ref, atol=ATOL, rtol=0)


def test_logit_scale_is_clamped_unlike_hf():
    hf, config = make_hf("one_stage")
    with torch.no_grad():
        hf.logit_scale.fill_(5.0)  # exp = 148 > 100
    ours = ours_from_hf(hf, config)
    images, tokens = inputs(config)
    with torch.no_grad():
        out = ours(images, tokens)
    assert float(out["logit_scale"]) == pytest.approx(100.0)
    assert float(hf.logit_scale.detach().exp()) > 100.0


def test_hf_config_conversion():
    _, config = make_hf("two_stage")
    cfg = model_config_from_hf(config)
    assert cfg.image.num_output_groups == [16, 4] and cfg.image.num_heads == 3 and cfg.image.mlp_ratio == 4.0
    assert cfg.text.heads == 2 and cfg.text.context_length == 24 and cfg.proj_hidden == 64
    default = model_config_from_hf(GroupViTConfig())
    assert default.image.depths == [6, 3, 3] and default.image.num_output_groups == [64, 8]
    assert default.text.width == 256 and default.text.layers == 12 and default.proj_hidden == 4096
    bad = GroupViTConfig(vision_config=dict(hidden_act="relu"))
    with pytest.raises(ValueError, match="hidden_act"):
        model_config_from_hf(bad)


# ---- NVlabs naming -------------------------------------------------------------------------------------------------
def hf_to_nvlabs(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of transformers' convert_groupvit_nvlab_to_hf renames (written independently of our converter)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        m = re.match(r"^(vision_model\.encoder\.stages\.\d+\.layers\.\d+|text_model\.encoder\.layers\.\d+)"
                     r"\.self_attn\.([qkv])_proj\.(weight|bias)$", key)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        name = key
        name = name.replace("vision_model.embeddings.position_embeddings", "img_encoder.pos_embed")
        name = name.replace("vision_model.embeddings.patch_embeddings.projection", "img_encoder.patch_embed.proj")
        name = name.replace("vision_model.embeddings.layernorm", "img_encoder.patch_embed.norm")
        name = name.replace("vision_model.encoder.stages", "img_encoder.layers")
        name = name.replace("vision_model.layernorm", "img_encoder.norm")
        if name.startswith("img_encoder.layers"):
            name = re.sub(r"\.layers\.(\d+)\.layer_norm(\d)", r".blocks.\1.norm\2", name)
            name = re.sub(r"\.layers\.(\d+)\.self_attn\.out_proj", r".blocks.\1.attn.proj", name)
            name = re.sub(r"\.layers\.(\d+)\.mlp", r".blocks.\1.mlp", name)
            name = name.replace("pre_assign_attn.attn.out_proj", "pre_assign_attn.attn.proj")
        name = name.replace("text_model.embeddings.token_embedding", "text_encoder.token_embedding")
        name = name.replace("text_model.embeddings.position_embedding.weight", "text_encoder.positional_embedding")
        name = name.replace("text_model.encoder.layers.", "text_encoder.transformer.resblocks.")
        if "resblocks" in name:
            name = name.replace("layer_norm1", "ln_1").replace("layer_norm2", "ln_2")
            name = name.replace("self_attn.out_proj", "attn.out_proj")
            name = name.replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj")
        name = name.replace("text_model.final_layer_norm", "text_encoder.ln_final")
        for hf_head, nv_head in (("visual_projection", "img_projector"), ("text_projection", "text_projector")):
            if name.startswith(hf_head + "."):
                idx, rest = name[len(hf_head) + 1 :].split(".", 1)
                target = {"0": "linear_hidden.0", "1": "linear_hidden.1", "3": "linear_out"}[idx]
                name = f"{nv_head}.{target}.{rest}"
                if rest == "weight" and idx in ("0", "3"):
                    value = value.unsqueeze(-1)  # Conv1d(k=1)
        out[name] = value
    for (prefix, kind), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]])
        if prefix.startswith("text_model"):
            layer = prefix.rsplit(".", 1)[1]
            out[f"text_encoder.transformer.resblocks.{layer}.attn.in_proj_{kind}"] = fused
        else:
            stage, layer = re.findall(r"\d+", prefix)
            out[f"img_encoder.layers.{stage}.blocks.{layer}.attn.qkv.{kind}"] = fused
    out["multi_label_logit_scale"] = torch.tensor(2.0)
    return out


@pytest.mark.parametrize("name", list(ARCHS))
def test_nvlabs_checkpoint_gives_hf_outputs(name, tmp_path):
    hf, config = make_hf(name, seed=3)
    official = hf_to_nvlabs(hf.state_dict())
    assert "img_encoder.layers.0.downsample.assign.q_proj.weight" in official
    assert official["img_projector.linear_hidden.0.weight"].ndim == 3
    path = tmp_path / "group_vit_official.pth"
    torch.save({"model": official}, path)
    ours = load_model(path, cfg=model_config_from_hf(config))
    assert_same_outputs(ours, hf, config)
    assert float(ours.multi_label_logit_scale.detach()) == 2.0
    # without a config the architecture is read from the shapes (heads by the official rules)
    inferred = infer_model_config(convert_nvlabs_state_dict(official))
    expected = model_config_from_hf(config)
    for field in ("depths", "num_group_tokens", "num_output_groups", "embed_dim", "patch_size", "image_size"):
        assert getattr(inferred.image, field) == getattr(expected.image, field), field
    assert dataclasses.replace(inferred.text, heads=expected.text.heads) == expected.text
    assert load_model(path).cfg.image.depths == expected.image.depths
