"""Zero-shot segmentation protocol. Defaults follow the released code (shared groupvit.md)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    datasets: list[str] = field(default_factory=lambda: ["synthetic"])  # synthetic | voc | context | coco_object
    templates: list[str] = field(default_factory=lambda: ["a photo of a {}."])
    assignment: str = "soft"  # soft (official) | hard pixel-to-group maps
    topk_classes: int = 5  # keep the pooled image embedding's top-k classes; 0 disables
    bg_thresh: float = 0.95  # per-dataset overrides in bg_thresh_by_dataset
    bg_thresh_by_dataset: dict = field(default_factory=lambda: {"voc": 0.95, "context": 0.35, "coco_object": 0.95})
    resize_short: int = 448  # 0 = keep the input size
    mode: str = "slide"  # slide | whole
    window: int = 448
    stride: int = 224
    batch_size: int = 8
    max_images: int = 0  # 0 = the whole split
