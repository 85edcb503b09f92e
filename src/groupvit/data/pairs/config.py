"""The `pairs` section of a preset: which URL/caption lists become which shard folders, and how.

Why a section of its own: downloading is a one-off job with its own settings (network, image size, shard size) that
no training variant may change, so it sits beside `data` instead of inside it. Standard library only: the config
loader (and Snakemake's DAG build) imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The list formats groupvit.data.pairs.lists reads (config.schema.yaml lists the same names).
FORMATS = ("cc3m", "cc12m", "yfcc", "redcaps", "tsv", "csv")
BACKENDS = ("builtin", "img2dataset")


@dataclass
class PairsDatasetConfig:
    """One URL/caption list and the shard folder it becomes: `<pairs.output_dir>/<name>/`."""

    name: str = ""  # folder name under output_dir (cc3m, cc12m, yfcc14m, redcaps): must match data.shards
    format: str = "cc3m"  # cc3m | cc12m | yfcc | redcaps | tsv | csv (see groupvit.data.pairs.lists)
    url_list: str = ""  # list file, folder of list files, or glob
    sha256: str = ""  # expected sha256 of the list file (a single file); empty: not checked
    url_col: str = ""  # tsv/csv/yfcc with a header: the URL column (empty: the format's default)
    caption_col: str = ""  # tsv/csv with a header: the caption column (empty: the format's default)


@dataclass
class PairsConfig:
    """How URL/caption lists are turned into webdataset shards in img2dataset's layout."""

    datasets: list[PairsDatasetConfig] = field(default_factory=list)
    output_dir: str = ""  # empty: data/<preset>/shards
    backend: str = "builtin"  # builtin (this package) | img2dataset (a separate install, see docs/real-data.md)
    image_size: int = 512  # short side after resizing, keep ratio (the official shards: 512)
    resize_only_if_bigger: bool = True  # the official img2dataset commands never upscale
    encode_quality: int = 95  # JPEG quality of the re-encoded images (img2dataset's default)
    samples_per_shard: int = 10000  # URLs per shard (img2dataset's default); failed ones leave gaps
    workers: int = 32  # fetch threads per process
    processes: int = 1  # shards downloaded at once (img2dataset: processes_count)
    retries: int = 2  # extra attempts after a network error, a timeout, HTTP 429 or 5xx
    timeout: float = 10.0  # seconds per HTTP request
    min_caption_words: int = 1  # pairs with shorter captions are dropped before download (YFCC: at least 2)
    img2dataset_executable: str = "img2dataset"  # the separate install's entry point (PATH name or path)
