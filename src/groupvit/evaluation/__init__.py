"""Zero-shot evaluation: segmentation (GroupViT protocol), metrics (mmseg definition), datasets, baselines,
classification and figures.

Modules, one job each:
  config          EvalConfig (the protocol's knobs)
  metrics         pure mmseg-style metrics; collector: the stateful per-split accumulator
  report_io       metrics JSON / per-class CSV writers, sha256_file
  text, scoring   class prompt embeddings; groups -> class scores -> pixel scores (background rule)
  windows         short-side resize, sliding windows, padding to the patch grid
  grouping        Groups record and the model's own grouper; baselines: ViT + clustering groupers
  segmenter       ZeroShotSegmenter; evaluate: split loop, group oracle, qualitative samples
  split_score     score_split: mIoU, objects-only mIoU, all-background floor and group oracle of one split
  datasets/       synthetic, VOC, Context, COCO-Object readers; classification: zero-shot accuracy
  download/       the real datasets' download, verification and conversion (groupvit download-eval)
  overlays        segment_files / segment_images: `groupvit segment` on your own images (overlay, mask, JSON);
                  input_protocol: the checkpoint's own resize and windows; user_inputs: reading any image and
                  name lists; segment_outputs: palette masks and per-segment scores; figures, palette: report plots

The package import stays light (the config loader imports EvalConfig from here); the API below loads lazily.
"""
from __future__ import annotations

from groupvit.lazy import lazy_getattr

_LAZY = {
    "ZeroShotSegmenter": "segmenter",
    "resolve_bg_thresh": "segmenter",
    "ModelGrouper": "grouping",
    "Groups": "grouping",
    "ClusterGrouper": "baselines",
    "SegmentationMeter": "collector",
    "SegmentationResult": "collector",
    "evaluate_segmentation": "evaluate",
    "evaluate_group_oracle": "evaluate",
    "collect_qualitative": "evaluate",
    "SplitScore": "split_score",
    "objects_miou": "split_score",
    "score_split": "split_score",
    "load_eval_dataset": "datasets",
    "sha256_file": "report_io",
    "write_metrics_json": "report_io",
    "write_per_class_csv": "report_io",
    "segment_images": "overlays",
    "evaluate_image_folder": "classification",
    "evaluate_object_crops": "classification",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = sorted(_LAZY)
