"""Fine-tuning: a fresh run starts from an official-format checkpoint (train.init_from) and trains only part of the
model (train.freeze); bad groups and sources that do not fit are refused with the key, the value and the file."""
from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch

from groupvit.config import ConfigError, load_config
from groupvit.model import build_model
from groupvit.model.checkpoint import load_checkpoint_state
from groupvit.train.finetune import FREEZE_GROUPS, freeze_groups
from groupvit.train.runner import run_training, train
from helpers.toy import ToyCLIP

VARIANT = "groupvit_2stage"
# A tiny model of the official architecture (linear patch embedding, CLIP-style text transformer, plain grouping
# blocks), so that the NVlabs file below is one the official code could have written.
TINY = [
    "world.num_train=32", "world.num_val=2", "world.num_eval=2", "world.shard_size=32",
    "model.image.image_size=32", "model.image.stem=linear", "model.image.embed_dim=32", "model.image.num_heads=2",
    "model.image.depths=[1,1,1]", "model.image.num_group_tokens=[4,2,0]", "model.image.num_output_groups=[4,2]",
    "model.image.group_query_embed=false", "model.image.member_embeds=false", "model.image.first_stage_token_radius=0",
    "model.image.assign_logit_scale=1.0",
    "model.text.kind=transformer", "model.text.width=32", "model.text.layers=1", "model.text.heads=2",
    "model.text.context_length=16", "model.proj_dim=32", "model.proj_hidden=64",
    "train.loss.multi_label_pooling=image",
    "train.batch_size=8", "train.steps=3", "train.warmup_steps=2", "train.checkpoint_every=2", "train.log_every=1",
    "data.num_workers=0", "data.shuffle_buffer=16",
]


def ours_to_nvlabs(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> the official NVlabs/GroupViT names and layouts (Conv1d projection heads)."""
    renames = [
        (r"^image_encoder\.stages\.(\d+)\.grouping\.", r"img_encoder.layers.\1.downsample."),
        (r"^image_encoder\.stages\.(\d+)\.", r"img_encoder.layers.\1."),
        (r"^image_encoder\.", "img_encoder."),
        (r"^text_encoder\.blocks\.(\d+)\.norm1\.", r"text_encoder.transformer.resblocks.\1.ln_1."),
        (r"^text_encoder\.blocks\.(\d+)\.norm2\.", r"text_encoder.transformer.resblocks.\1.ln_2."),
        (r"^text_encoder\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$",
         r"text_encoder.transformer.resblocks.\1.attn.in_proj_\2"),
        (r"^text_encoder\.blocks\.(\d+)\.attn\.proj\.", r"text_encoder.transformer.resblocks.\1.attn.out_proj."),
        (r"^text_encoder\.blocks\.(\d+)\.mlp\.fc1\.", r"text_encoder.transformer.resblocks.\1.mlp.c_fc."),
        (r"^text_encoder\.blocks\.(\d+)\.mlp\.fc2\.", r"text_encoder.transformer.resblocks.\1.mlp.c_proj."),
        (r"^text_encoder\.norm\.", "text_encoder.ln_final."),
        (r"^(image|text)_head\.fc1\.", r"\1_projector.linear_hidden.0."),
        (r"^(image|text)_head\.norm\.", r"\1_projector.linear_hidden.1."),
        (r"^(image|text)_head\.fc2\.", r"\1_projector.linear_out."),
        (r"^image_projector\.", "img_projector."),
    ]
    out = {}
    for key, value in sd.items():
        name = key
        for pattern, repl in renames:
            name = re.sub(pattern, repl, name)
        if re.match(r"^(img|text)_projector\.linear_(hidden\.0|out)\.weight$", name):
            value = value.unsqueeze(-1)  # the official heads are Conv1d(k=1)
        out[name] = value.clone()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from groupvit.data.world.generate import generate_world

    cfg = load_config(overrides=TINY, preset="smoke")
    root = tmp_path_factory.mktemp("world") / "synthetic"
    generate_world(cfg.world, root, workers=1, progress=False)
    return cfg, root


@pytest.fixture(scope="module")
def official(world, tmp_path_factory):
    """An official-format checkpoint of the tiny architecture, and our state dict of the same weights."""
    cfg, _ = world
    torch.manual_seed(123)  # not the run's seed: a random init of the run differs from these weights everywhere
    source = build_model(cfg.for_variant(VARIANT, 0).model)
    path = tmp_path_factory.mktemp("released") / "group_vit_official.pth"
    torch.save({"model": ours_to_nvlabs(source.state_dict())}, path)
    assert load_checkpoint_state(path)["source"] == "nvlabs"
    return path, {k: v.clone() for k, v in source.state_dict().items()}


def finetune_config(cfg_overrides: list[str]):
    return load_config(overrides=TINY + cfg_overrides, preset="smoke")


def test_finetune_official_checkpoint_with_frozen_text_encoder(world, official, tmp_path, capfd):
    _, root = world
    path, source = official
    cfg = finetune_config([f"train.init_from={path}", "train.freeze=[text_encoder]"])
    summary = run_training(cfg, VARIANT, 0, tmp_path / "run", data_dir=root)

    tuned = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    params = {name for name, _ in build_model(cfg.for_variant(VARIANT, 0).model).named_parameters()}
    frozen = sorted(k for k in params if k.startswith("text_encoder."))
    trained = sorted(params - set(frozen))
    assert frozen and trained
    for name in frozen:  # bit-identical to the released weights
        assert torch.equal(tuned[name], source[name]), f"frozen {name} changed"
    moved = [name for name in trained if not torch.equal(tuned[name], source[name])]
    assert len(moved) >= 0.9 * len(trained), f"only {len(moved)} of {len(trained)} trainable tensors moved"
    for name in ("image_encoder.patch_embed.proj.weight", "image_encoder.stages.0.group_token", "image_head.fc2.weight",
                 "text_head.fc1.weight", "logit_scale"):
        assert name in moved
    # ...by a few small optimiser steps from the source, not from a random init
    assert max(float((tuned[n] - source[n]).abs().max()) for n in trained) < 0.02

    # a new run: step count from 0, the schedule from its warmup start, an optimiser that holds only what trains
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and summary["steps"] == 3 and summary["resumed_from"] is None
    assert records[0]["lr"] == pytest.approx(cfg.train.warmup_lr)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "step-00000002.pt", weights_only=True)
    in_optimizer = sum(len(group["params"]) for group in ckpt["optimizer"]["param_groups"])
    assert in_optimizer == len(trained)
    n_frozen = sum(source[n].numel() for n in frozen)
    assert summary["trainable_params"] == summary["num_params"] - n_frozen

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["init_from"] == {"path": str(path.resolve()), "sha256": digest, "source_format": "nvlabs"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["init_from"]["sha256"] == digest
    err = capfd.readouterr().err
    assert f"initialised from {path.resolve()} (nvlabs format" in err and f"{n_frozen:,} frozen" in err


def test_resume_wins_over_init_from(world, official, tmp_path, capfd):
    """A run folder with checkpoints of this run resumes from them; init_from applies to a fresh run only."""
    _, root = world
    path, _ = official
    cfg = finetune_config([f"train.init_from={path}", "train.freeze=[image_encoder.except_group_tokens]"])
    resolved = cfg.for_variant(VARIANT, 0)
    train(resolved, tmp_path, data_dir=root)
    before = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    capfd.readouterr()
    summary = train(resolved, tmp_path, data_dir=root)  # finished: nothing left to train, weights untouched
    err = capfd.readouterr().err
    assert f"train.init_from {path} not applied" in err and "init_from applies to a fresh run only" in err
    assert summary["init_from"]["source_format"] == "nvlabs"
    after = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    # only the group tokens of the image encoder trained
    source = load_checkpoint_state(path)["state_dict"]
    params = {name for name, _ in build_model(resolved.model).named_parameters()}
    tokens = {name for name in params if name.startswith("image_encoder.") and name.endswith(".group_token")}
    assert tokens
    for name in params:
        if name.startswith("image_encoder."):
            assert torch.equal(after[name], source[name]) == (name not in tokens), name


def test_unknown_or_empty_freeze_groups_are_refused(world, tmp_path):
    cfg, root = world
    with pytest.raises(ValueError, match=r"train\.freeze: 'text_tower' is not a parameter group; valid names: "
                                         r"image_encoder, image_encoder\.except_group_tokens, text_encoder"):
        run_training(finetune_config(["train.freeze=[text_tower]"]), VARIANT, 0, tmp_path / "a", data_dir=root)
    assert not (tmp_path / "a" / "model.pt").exists()
    with pytest.raises(ConfigError, match=r"train\.freeze: 'image_encoder' matches no parameter of this model"):
        freeze_groups(ToyCLIP(), ["image_encoder"])
    with pytest.raises(ConfigError, match="freezes every parameter"):
        freeze_groups(build_model(cfg.for_variant(VARIANT, 0).model), list(FREEZE_GROUPS))


def test_source_that_does_not_fit_names_the_file_and_the_fix(world, tmp_path):
    cfg, root = world
    other = load_config(overrides=TINY + ["model.proj_dim=16"], preset="smoke").for_variant(VARIANT, 0)
    path = tmp_path / "other_arch.pth"
    torch.save({"model": ours_to_nvlabs(build_model(other.model).state_dict())}, path)
    bad = finetune_config([f"train.init_from={path}"])
    with pytest.raises(ConfigError) as err:
        run_training(bad, VARIANT, 0, tmp_path / "run", data_dir=root)
    message = str(err.value)
    assert message.startswith(f"train.init_from: {path} (nvlabs format) does not match the model architecture")
    assert "image_head.fc2.weight: checkpoint (16, 64) vs model (32, 64)" in message
    assert "set those keys to the source's architecture" in message and "model.proj_dim=16 (run: 32)" in message
    with pytest.raises(ConfigError, match=r"train\.init_from: .*missing\.pth: no such file"):
        run_training(finetune_config([f"train.init_from={tmp_path / 'missing.pth'}"]), VARIANT, 0,
                     tmp_path / "run2", data_dir=root)


def test_init_from_our_checkpoint_and_a_hugging_face_folder(world, tmp_path, capfd):
    """Our model.pt (whose stored settings the weights cannot show are compared) and an HF folder (its sha256 is the
    weight file's) start a run as the official file does."""
    from groupvit.model import save_checkpoint

    _, root = world
    ours_cfg = load_config(overrides=TINY + ["model.image.num_heads=4"], preset="smoke").for_variant(VARIANT, 0)
    torch.manual_seed(5)
    source = build_model(ours_cfg.model)
    ours = save_checkpoint(tmp_path / "model.pt", source)
    summary = run_training(finetune_config([f"train.init_from={ours}", "train.freeze=[text_encoder]"]), VARIANT, 0,
                           tmp_path / "from_ours", data_dir=root)
    digest = hashlib.sha256(ours.read_bytes()).hexdigest()
    assert summary["init_from"] == {"path": str(ours.resolve()), "sha256": digest, "source_format": "ours"}
    assert f"note: the run's model.* differs from {ours}'s stored config in model.image.num_heads: 4 -> 2" \
        in capfd.readouterr().err
    tuned = torch.load(tmp_path / "from_ours" / "model.pt", weights_only=True)["state_dict"]
    embedding = "text_encoder.token_embedding.weight"
    assert torch.equal(tuned[embedding], source.state_dict()[embedding])

    pytest.importorskip("transformers")
    from groupvit.model.export_hf import export_hf

    folder, _ = export_hf(save_checkpoint(tmp_path / "two_heads.pt", build_model(finetune_config([]).for_variant(
        VARIANT, 0).model)), tmp_path / "hf")
    summary = run_training(finetune_config([f"train.init_from={folder}", "train.freeze=[image_encoder]"]), VARIANT,
                           0, tmp_path / "from_hf", data_dir=root)
    weights = folder / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert summary["init_from"] == {"path": str(folder.resolve()), "sha256": digest, "source_format": "hf"}
    tuned = torch.load(tmp_path / "from_hf" / "model.pt", weights_only=True)["state_dict"]
    exported = load_checkpoint_state(folder)["state_dict"]
    assert torch.equal(tuned["image_encoder.stages.0.group_token"], exported["image_encoder.stages.0.group_token"])
