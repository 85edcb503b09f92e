"""Zero-shot segmentation protocol. Defaults follow the released code (shared groupvit.md)."""
from __future__ import annotations

from dataclasses import dataclass, field

# The 7-template ImageNet subset of the official code (datasets/imagenet_template.py, `sub_imagenet_template`),
# which the paper's ImageNet zero-shot numbers use.
IMAGENET_SUBSET_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of a {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=lambda: ["synthetic"])  # synthetic | voc | context | coco_object
    templates: list[str] = field(default_factory=lambda: ["a photo of a {}."])
    assignment: str = "soft"  # soft (official) | hard pixel-to-group maps
    # which embedding names a GroupViT segment: the segment token (official) or its members-only embedding (a model
    # trained with model.image.member_embeds; see that option)
    segment_embeds: str = "segments"  # segments | members
    # Extra text queries that mean "background" (not in the official protocol, which thresholds only): a segment
    # closer to one of them than to every class is background. Caption words only, e.g. the embedded world's
    # background phrases; never the eval split's class names.
    background_prompts: list[str] = field(default_factory=list)
    topk_classes: int = 5  # keep the pooled image embedding's top-k classes; 0 disables
    bg_thresh: float = 0.95  # per-dataset overrides in bg_thresh_by_dataset
    bg_thresh_by_dataset: dict = field(default_factory=lambda: {"voc": 0.95, "context": 0.35, "coco_object": 0.95})
    resize_short: int = 448  # 0 = keep the input size
    resize_long_max: int = 2048  # mmseg img_scale (2048, 448): the long side never exceeds this; 0 = no cap
    mode: str = "slide"  # slide | whole
    window: int = 448
    stride: int = 224
    batch_size: int = 8
    max_images: int = 0  # 0 = the whole split
    # Non-parametric baselines on the plain ViT's patch tokens (paper Table 5).
    kmeans_k: int = 8  # clusters per image (GroupViT has 8 output segments)
    spectral_k: int = 8
    meanshift_bandwidth: float = 0.0  # 0 = estimate per image from meanshift_quantile (sklearn estimate_bandwidth)
    # sklearn's default quantile is 0.3; that spans more than one segment when GroupViT's own granularity is
    # 8 segments per image (1/8 of the tokens each), so the bandwidth is the distance to the nearest 10%
    meanshift_quantile: float = 0.1
    cluster_normalize: bool = True  # L2-normalise patch features before clustering (the space they are named in)
    cluster_seed: int = 0
    # Error bars: bootstrap resamples of images for a 95% interval of the split mIoU (0 disables).
    bootstrap: int = 1000
    # Zero-shot classification (ImageNet-style folders and the synthetic world's object crops).
    classification_templates: list[str] = field(default_factory=lambda: list(IMAGENET_SUBSET_TEMPLATES))
    cls_resize: int = 256  # short side before the centre crop; 0 = keep
    cls_crop: int = 224  # centre crop; 0 = none
    num_qualitative: int = 6  # images in the report's qualitative grid
