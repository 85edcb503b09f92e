"""Where the real evaluation datasets live and how they are fetched (the preset key `eval_data`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalDataConfig:
    # Parent folder of the datasets: <root>/voc/VOCdevkit/VOC2012, <root>/context/VOCdevkit/VOC2010, <root>/coco.
    # "data" matches the readers' default roots, so `groupvit evaluate --dataset voc` finds them without --root.
    root: str = "data"
    downloads: str = ""  # where archives are kept (resumable, verified); "" = <root>/downloads
    allow_unpinned: bool = False  # accept files with no pinned checksum (records the sha256 it gets)
    sha256: dict = field(default_factory=dict)  # {file id: sha256}: pins added to / replacing the registry's
    urls: dict = field(default_factory=dict)  # {file id: URL}: mirrors replacing the registry's URLs
