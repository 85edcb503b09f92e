"""The real evaluation datasets' download and conversion (VOC, Pascal Context, COCO-Object).

  config    EvalDataConfig (the preset key `eval_data`: root, archive folder, pins, mirrors)
  sets      the registry of files, pinned checksums, conversions into the readers' layouts, ready markers
  fetch     resumable, checksum-verified HTTP(S) downloads
  archive   safe tar / zip extraction

The package import stays light: the config loader imports EvalDataConfig from here.
"""
