"""Pretraining pairs: URL/caption lists (CC3M, CC12M, YFCC14M, RedCaps) -> webdataset shards in img2dataset's
layout, which groupvit.data.shards reads for training.

One job per module:
  config               PairsConfig / PairsDatasetConfig (the preset's `pairs` section)
  lists                readers for the list formats -> (url, caption) pairs
  filter               drop unusable pairs (short captions, duplicate URLs, ...) and count why
  fetch                one URL -> bytes (timeout, retries with backoff, opt-out honoured)
  images               bytes -> verified, resized (keep ratio), re-encoded JPEG
  layout               img2dataset's shard/key names and what a finished shard is
  builtin              the built-in threaded downloader (resumable)
  img2dataset_backend  the command line of the separate img2dataset install
  summary              success-rate table over a folder's *_stats.json
  download             one dataset end to end: `download_dataset(dataset, cfg, out_dir)`

Nothing heavy is imported here: the config loader and Snakemake's DAG build import .config and .layout.
"""
