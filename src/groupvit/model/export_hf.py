"""Ours -> a Hugging Face `GroupViTModel` folder (config.json + model.safetensors), the inverse of .convert_hf.

`export_hf(checkpoint, out_dir)` reads any file `load_model` reads, refuses an architecture the HF port cannot
express (`hf_unsupported` gives every reason), renames and splits the weights into HF's layout, writes the folder
with `save_pretrained`, loads it back with `transformers.GroupViTModel.from_pretrained` and compares image and text
embeddings, logits and every stage's assignment map with ours on a fixed input before the folder gets its name.

What the folder does not carry: `multi_label_logit_scale` (a training-only parameter HF has no place for; loading the
folder back gives it logit_scale_init) and the training settings (drop path, Gumbel noise, init stds), which do not
change a model in eval mode. The logit scale is stored clamped at logit_scale_max, since HF does not clamp it.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import sha256_file
from .checkpoint import weights_file
from .config import ModelConfig
from .convert_hf import rename_table
from .rules import CLIP_VOCAB_SIZE, stage_output_groups
from .state_dict_utils import rename_keys

__all__ = ["ExportError", "hf_unsupported", "hf_config_dict", "to_hf_state_dict", "compare_with_hf", "export_hf"]

EXPORT_RECORD = "groupvit_export.json"
# Our tokenizer's start/end ids (CLIP BPE); HF pools the text at the first eos_token_id.
_SOT, _EOT = CLIP_VOCAB_SIZE - 2, CLIP_VOCAB_SIZE - 1
_HF_LOGIT_SCALE_MAX = 100.0  # what our loader clamps an HF model's logit scale at

_STAGE = r"^image_encoder\.stages\.(\d+)\."
_VBLOCK = _STAGE + r"blocks\.(\d+)\."
_TBLOCK = r"^text_encoder\.blocks\.(\d+)\."
_RENAMES = rename_table(to_ours=False)
_QKV = re.compile(r"^(?P<prefix>" + _VBLOCK[1:] + r"|" + _TBLOCK[1:] + r")attn\.qkv\.(?P<kind>weight|bias)$")
_NOT_EXPORTED = ("multi_label_logit_scale",)


class ExportError(ValueError):
    """A model or output folder the export cannot produce; the message says why and what to do."""


def hf_unsupported(cfg: ModelConfig) -> list[str]:
    """Every reason HF's GroupViTModel cannot compute what a model of this config computes (empty: exportable)."""
    im, tx = cfg.image, cfg.text
    reasons = []
    if not im.grouping:
        reasons.append("model.image.grouping=false (a plain ViT): HF's GroupViTModel always has grouping stages")
    if im.stem != "linear":
        reasons.append(f"model.image.stem={im.stem!r}: HF embeds patches with one linear (conv k=s=patch) projection")
    if not im.hard_assignment:
        reasons.append("model.image.hard_assignment=false: HF pools segments with the hard (one-hot) assignment "
                       "also in eval mode")
    if im.assign_logit_scale != 1.0:
        reasons.append(f"model.image.assign_logit_scale={im.assign_logit_scale}: HF scales the assignment logits "
                       "by 1/sqrt(width) only")
    if im.group_query_embed:
        reasons.append("model.image.group_query_embed=true: HF's grouping block has no per-group query embedding")
    if im.member_embeds:
        reasons.append("model.image.member_embeds=true: HF has no members-only segment embeddings")
    if im.first_stage_token_radius:
        reasons.append(f"model.image.first_stage_token_radius={im.first_stage_token_radius}: HF's attention is "
                       "global")
    if tx.kind != "transformer":
        reasons.append(f"model.text.kind={tx.kind!r}: HF's text tower is the CLIP-style causal transformer")
    elif tx.vocab_size != CLIP_VOCAB_SIZE:
        reasons.append(f"model.text.vocab_size={tx.vocab_size}: HF pools the text at eos_token_id = vocab_size - 1, "
                       f"which is the CLIP tokenizer's end token only for vocab_size {CLIP_VOCAB_SIZE}")
    if im.grouping:
        groups, outs = im.num_group_tokens, stage_output_groups(im)
        for i in range(1, len(groups)):
            if groups[i] and not groups[i - 1]:
                reasons.append(f"model.image.num_group_tokens={groups}: stage {i} groups after a stage without "
                               "group tokens, which HF's stage layout cannot express")
            elif groups[i] and outs[i - 1] != groups[i - 1]:
                reasons.append(f"model.image stage {i}: HF projects the previous stage's num_output_groups "
                               f"({outs[i - 1]}) into its group tokens, ours its num_group_tokens ({groups[i - 1]})")
    return reasons


def hf_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The keyword arguments of transformers.GroupViTConfig for an exportable ModelConfig."""
    im, tx = cfg.image, cfg.text
    outs, per_stage, last = stage_output_groups(im), [], 0
    for g, out in zip(im.num_group_tokens, outs):
        last = out if g else last  # a stage without group tokens repeats the last count (HF's [64, 8, 8])
        per_stage.append(last)
    vision = dict(
        hidden_size=im.embed_dim, intermediate_size=int(im.embed_dim * im.mlp_ratio), depths=list(im.depths),
        num_hidden_layers=sum(im.depths), num_group_tokens=list(im.num_group_tokens), num_output_groups=per_stage,
        num_attention_heads=im.num_heads, image_size=im.image_size, patch_size=im.patch_size,
        num_channels=im.in_chans, hidden_act="gelu", layer_norm_eps=1e-5, dropout=0.0, attention_dropout=0.0,
        assign_eps=im.assign_eps, assign_mlp_ratio=[float(r) for r in im.assign_mlp_ratio],
    )
    text = dict(
        vocab_size=tx.vocab_size, hidden_size=tx.width, intermediate_size=4 * tx.width, num_hidden_layers=tx.layers,
        num_attention_heads=tx.heads, max_position_embeddings=tx.context_length, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, dropout=0.0, attention_dropout=0.0, bos_token_id=_SOT, eos_token_id=_EOT,
    )
    return dict(text_config=text, vision_config=vision, projection_dim=cfg.proj_dim,
                projection_intermediate_dim=cfg.proj_hidden, logit_scale_init_value=cfg.logit_scale_init)


def _hf_block_prefix(prefix: str) -> str:
    m = re.match(_VBLOCK, prefix)
    if m:
        return f"vision_model.encoder.stages.{m.group(1)}.layers.{m.group(2)}.self_attn."
    m = re.match(_TBLOCK, prefix)
    return f"text_model.encoder.layers.{m.group(1)}.self_attn."


def to_hf_state_dict(sd: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict -> HF GroupViTModel's (q/k/v split, heads renamed, logit scale clamped, zero q/k/v biases for
    models built without them, since HF's projections always have one)."""
    reasons = hf_unsupported(cfg)
    if reasons:
        raise ExportError("the Hugging Face GroupViTModel cannot express this model: " + "; ".join(reasons))
    fused, rest = {}, {}
    for key, value in sd.items():
        if key in _NOT_EXPORTED:
            continue
        m = _QKV.match(key)
        if m:
            fused.setdefault(m["prefix"], {})[m["kind"]] = value
        else:
            rest[key] = value
    out = rename_keys(rest, _RENAMES)
    for prefix, parts in fused.items():
        q, k, v = parts["weight"].chunk(3, dim=0)
        biases = parts["bias"].chunk(3) if "bias" in parts else [torch.zeros(q.shape[0], dtype=q.dtype)] * 3
        hf = _hf_block_prefix(prefix)
        for which, weight, bias in zip("qkv", (q, k, v), biases):
            out[f"{hf}{which}_proj.weight"] = weight.contiguous()
            out[f"{hf}{which}_proj.bias"] = bias.contiguous()
    scale = float(out["logit_scale"])
    effective = min(math.exp(scale), cfg.logit_scale_max)
    if effective > _HF_LOGIT_SCALE_MAX * (1 + 1e-6):
        raise ExportError(f"logit scale exp({scale:.4f}) = {effective:.1f} > {_HF_LOGIT_SCALE_MAX:g}: our loader "
                          "clamps a Hugging Face model's scale at 100, so the folder would not load back the same")
    out["logit_scale"] = torch.tensor(min(scale, math.log(cfg.logit_scale_max)), dtype=out["logit_scale"].dtype)
    return out


@dataclass(frozen=True)
class Comparison:
    """Largest absolute differences between our model and the HF one on the same input (eval mode)."""

    image_embeds: float
    text_embeds: float
    logits: float
    assignments: float
    hard_agreement: float  # fraction of patches whose argmax group agrees, over all stages

    def max_diff(self) -> float:
        return max(self.image_embeds, self.text_embeds, self.logits, self.assignments)


def _probe(cfg: ModelConfig, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    side = cfg.image.image_size
    images = torch.randn(2, cfg.image.in_chans, side, side, generator=generator)
    tokens = tokenizer(["a photo of a cat", "two dogs playing on a beach at sunset", "a red star"])
    return images, tokens


@torch.no_grad()
def compare_with_hf(ours: nn.Module, hf: nn.Module) -> Comparison:
    """Run both on a fixed batch (2 random images, 3 captions) and measure how far apart they are."""
    ours, hf = ours.eval(), hf.eval()
    images, tokens = _probe(ours.cfg, ours.tokenizer)
    ref = hf(input_ids=tokens, pixel_values=images, output_attentions=True)
    image_embed, text_embed = ours.encode_image(images), ours.encode_text(tokens)
    logits = ours._scale(ours.logit_scale) * image_embed @ text_embed.t()
    enc = ours.image_encoder(images)
    stages = ref.vision_model_output.attentions
    if len(stages) != len(enc.soft_assignments):
        raise ExportError(f"HF returned {len(stages)} assignment maps, ours {len(enc.soft_assignments)}")
    assign, agree, total = 0.0, 0, 0
    for theirs, soft, hard in zip(stages, enc.soft_assignments, enc.hard_assignments):
        assign = max(assign, float((theirs - soft).abs().max()))
        agree += int((theirs.argmax(1) == hard.argmax(1)).sum())
        total += theirs.shape[0] * theirs.shape[2]
    return Comparison(
        image_embeds=float((image_embed - ref.image_embeds).abs().max()),
        text_embeds=float((text_embed - ref.text_embeds).abs().max()),
        logits=float((logits - ref.logits_per_image).abs().max()),
        assignments=assign,
        hard_agreement=agree / max(total, 1),
    )


def check_out_folder(out: Path, overwrite: bool) -> None:
    """An export's output folder must be new, empty, or (with overwrite) replaceable."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; choose another folder or pass --overwrite")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` that takes `out`'s name only when the block succeeds (after the export was
    checked); on an error nothing is left under either name."""
    tmp = out.parent / f".{out.name}.export.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_hf(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False, atol: float = 1e-4,
) -> tuple[Path, Comparison]:
    """Write `checkpoint` as an HF GroupViTModel folder at `out_dir`; return (folder, comparison with ours).

    The folder is written under a temporary name beside `out_dir` and renamed only after the HF model loaded from
    it matched ours within `atol`; otherwise ExportError and nothing is left under `out_dir`.
    """
    try:
        from transformers import GroupViTConfig
        from transformers import GroupViTModel as HFGroupViT
    except ImportError as err:
        raise ExportError(f"the Hugging Face export needs the transformers package ({err})") from None
    from .checkpoint import checkpoint_filter_fn, load_checkpoint_state
    from .config import model_config_from_dict
    from .factory import build_model
    from .state_dict_utils import check_compatible

    out = Path(out_dir)
    check_out_folder(out, overwrite)
    state = load_checkpoint_state(checkpoint)
    cfg = model_config_from_dict(state["config"])
    reasons = hf_unsupported(cfg)
    if reasons:
        raise ExportError(f"{checkpoint}: the Hugging Face GroupViTModel cannot express this model: "
                          + "; ".join(reasons))
    ours = build_model(cfg)
    weights = checkpoint_filter_fn(state["state_dict"], ours)
    check_compatible(ours, weights, source=f"{checkpoint} ({state['source']})")
    ours.load_state_dict(weights)
    ours.eval()
    hf_sd = to_hf_state_dict(ours.state_dict(), cfg)
    hf = HFGroupViT(GroupViTConfig(**hf_config_dict(cfg))).eval()
    missing, unexpected = hf.load_state_dict(hf_sd, strict=False)
    if missing or unexpected:
        raise ExportError(f"{checkpoint}: weights do not fit HF's layout: missing {missing[:8]}, "
                          f"unexpected {unexpected[:8]}")
    with staged_folder(out) as tmp:
        hf.save_pretrained(tmp)
        reloaded = HFGroupViT.from_pretrained(tmp)
        comparison = compare_with_hf(ours, reloaded)
        if comparison.max_diff() > atol:
            raise ExportError(f"{checkpoint}: the exported model differs from ours by {comparison.max_diff():.2e} "
                              f"(> atol {atol:g}): {comparison}")
        record = {"source": str(checkpoint), "source_sha256": sha256_file(weights_file(checkpoint)),
                  "source_format": state["source"], "not_exported": list(_NOT_EXPORTED),
                  "comparison": comparison.__dict__}
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return out, comparison
