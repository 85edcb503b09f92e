"""Our checkpoint format (atomic, weights-only, self-describing), Hugging Face folders and state dicts, and the errors
for another architecture, an unknown file and a file that needs unpickling."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import torch

from groupvit.model import (
    ArchitectureMismatch, ImageEncoderConfig, ModelConfig, TextEncoderConfig, build_model, checkpoint_filter_fn,
    load_checkpoint_state, load_model, save_checkpoint,
)


def cfg(**image_kw) -> ModelConfig:
    image = dict(image_size=16, patch_size=4, embed_dim=16, depths=[1, 1, 1], num_heads=2,
                 num_group_tokens=[4, 2, 0], num_output_groups=[4, 2])
    image.update(image_kw)
    return ModelConfig(image=ImageEncoderConfig(**image), text=TextEncoderConfig(width=16, layers=1, heads=2,
                       context_length=12), proj_hidden=32, proj_dim=8)


def outputs(model, size: int = 16):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, size, size), model.tokenizer(["a cat", "two dogs"]))


def test_roundtrip_is_exact_and_weights_only(tmp_path):
    torch.manual_seed(0)
    model = build_model(cfg())
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, step=7, note=Path("/x/y"), scores=[1.5, 2])
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary files left
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "groupvit-model" and raw["meta"] == {"step": 7, "note": "/x/y", "scores": [1.5, 2]}
    assert raw["config"] == dataclasses.asdict(model.cfg)
    loaded = load_model(path)
    assert not loaded.training and loaded.cfg == model.cfg
    for key, value in outputs(model).items():
        torch.testing.assert_close(outputs(loaded)[key], value, atol=0, rtol=0)
    assert load_checkpoint_state(path)["meta"]["step"] == 7


def test_checkpoint_keys_of_removed_options_load_only_at_the_built_in_value(tmp_path):
    """A checkpoint whose config lists a removed option at the value the model now builds loads unchanged; any other
    value is refused, naming the key."""
    torch.manual_seed(0)
    model = build_model(cfg())
    path = save_checkpoint(tmp_path / "model.pt", model)
    raw = torch.load(path, weights_only=True)
    raw["config"]["image"] |= {"member_source": "grouped", "segment_query_residual": "group", "assign_logits": "dot"}
    torch.save(raw, path)
    for key, value in outputs(model).items():
        torch.testing.assert_close(outputs(load_model(path))[key], value, atol=0, rtol=0)
    raw["config"]["image"]["assign_logits"] = "cosine"
    torch.save(raw, path)
    with pytest.raises(ValueError, match="model.image.assign_logits='cosine'"):
        load_model(path)


def test_plain_vit_roundtrip(tmp_path):
    model = build_model(cfg(grouping=False))
    loaded = load_model(save_checkpoint(tmp_path / "vit.pt", model))
    assert not loaded.is_grouping
    torch.testing.assert_close(outputs(loaded)["image_embed"], outputs(model)["image_embed"], atol=0, rtol=0)


def test_save_is_atomic_and_meta_checked(tmp_path, monkeypatch):
    model = build_model(cfg())
    path = save_checkpoint(tmp_path / "model.pt", model, step=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="meta.obj"):
        save_checkpoint(path, model, obj=object())

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_atomic_writes_are_as_readable_as_a_plain_open(tmp_path, umask):
    """Checkpoints, metrics and shards are written to a temp file and renamed; the result must carry the
    permissions a plain open() gives under the user's umask, not the owner-only 0600 of a temp file, or the rest
    of a group sharing the results folder cannot read them."""
    import os
    import stat

    from groupvit.atomic import atomic_write_json
    from groupvit.data.world.writers import DeterministicTarWriter

    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        written = [
            save_checkpoint(tmp_path / "model.pt", build_model(cfg()), step=1),
            atomic_write_json({"mIoU": 0.5}, tmp_path / "metrics.json"),
        ]
        with DeterministicTarWriter(tmp_path / "shard-000000.tar") as shard:
            shard.add("0.txt", b"a cat")
        written.append(tmp_path / "shard-000000.tar")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {p.name: oct(expected) for p in written}


def test_other_architecture_is_refused_with_keys(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", build_model(cfg()))
    with pytest.raises(ArchitectureMismatch) as err:
        load_model(path, cfg=cfg(depths=[2, 1], num_group_tokens=[4, 0], num_output_groups=[2]))
    message = str(err.value)
    assert "missing" in message and "unexpected" in message
    assert "image_encoder.stages.0.blocks.1.norm1.weight" in message  # a first missing key is named
    with pytest.raises(ArchitectureMismatch, match="shape mismatch"):
        load_model(path, cfg=dataclasses.replace(cfg(), proj_dim=4))


def test_position_embedding_resampled_for_another_resolution(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", build_model(cfg()))
    bigger = load_model(path, cfg=cfg(image_size=24))
    assert bigger.image_encoder.pos_embed.shape == (1, 36, 16)


def test_unknown_and_unsafe_files(tmp_path):
    unknown = tmp_path / "unknown.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, unknown)
    with pytest.raises(ValueError, match="unrecognised checkpoint"):
        load_model(unknown)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "config": argparse.Namespace(lr=0.1)}, unsafe)  # like an OmegaConf object
    with pytest.raises(ValueError, match="weights-only"):
        load_model(unsafe)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "groupvit-model", "version": 99, "config": {}, "state_dict": {}, "meta": {}}, newer)
    with pytest.raises(ValueError, match="newer"):
        load_model(newer)


def test_filter_accepts_wrapped_and_ddp_state_dicts():
    model = build_model(cfg())
    wrapped = {"model": {f"module.{k}": v for k, v in model.state_dict().items()}}
    sd = checkpoint_filter_fn(wrapped, model)
    assert sd.keys() == model.state_dict().keys()


def test_hf_folder_and_state_dict(tmp_path):
    transformers = pytest.importorskip("transformers")
    from groupvit.model import model_config_from_hf

    torch.manual_seed(0)
    config = transformers.GroupViTConfig(
        text_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=128, depths=[1, 1], num_hidden_layers=2,
                           num_group_tokens=[4, 0], num_output_groups=[2, 2], num_attention_heads=2, image_size=16,
                           patch_size=4),
        projection_dim=8, projection_intermediate_dim=32,
    )
    hf = transformers.GroupViTModel(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    from_folder = load_model(tmp_path / "hf")  # config.json -> exact architecture (heads included)
    assert from_folder.cfg.image.num_heads == 2 and from_folder.cfg.text.heads == 2
    images = torch.randn(2, 3, 16, 16)
    tokens = from_folder.tokenizer(["a cat", ""])
    with torch.no_grad():
        ref = hf(input_ids=tokens, pixel_values=images)
        mine = from_folder(images, tokens)
    torch.testing.assert_close(mine["image_embed"], ref.image_embeds, atol=1e-4, rtol=0)
    torch.testing.assert_close(mine["text_embed"], ref.text_embeds, atol=1e-4, rtol=0)
    torch.save(hf.state_dict(), tmp_path / "hf_state.bin")
    from_sd = load_model(tmp_path / "hf_state.bin", cfg=model_config_from_hf(config))
    torch.testing.assert_close(from_sd.encode_image(images), mine["image_embed"], atol=1e-5, rtol=0)
