"""The `groupvit` commands for one's own images, data and models: segment, classify, classification-table, groups,
export, shards-from-folder and train-supervised (the study's own commands are in groupvit.cli, which registers
these)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groupvit.cli import _add_config_args
from groupvit.config import DEFAULT_CONFIG, ConfigError, ExperimentConfig, load_config


# The commands here load the config themselves rather than through groupvit.cli's helpers: a workflow job's code
# digest (groupvit.code_digest) follows imports, and `classify` must not depend on every command of the CLI.
def _config(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.preset, args.overrides)


def _synthetic_split(cfg: ExperimentConfig, split: str, root: str | None):
    from groupvit.evaluation import load_eval_dataset

    return load_eval_dataset("synthetic", root or cfg.data_dir / "synthetic" / split, split="val")


def _segment_names(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """--classes and --background as lists (a comma-separated list or a file of one name per line), checked before
    any model is loaded; background None = the protocol's own phrases."""
    from groupvit.evaluation.segment_outputs import MAX_LABELS
    from groupvit.evaluation.user_inputs import duplicates, read_names

    try:
        classes = read_names(args.classes, "--classes")
        background = None
        if args.background is not None:
            cleared = args.background.strip().lower() in ("", "none")
            background = [] if cleared else read_names(args.background, "--background")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if not classes:
        raise ConfigError(f"--classes {args.classes!r}: no class names; give them comma-separated ('cat,dog') or as "
                          "a text file with one name per line")
    if any(c.lower() == "background" for c in classes):
        raise ConfigError("--classes: 'background' is implicit (mask value 0); describe what the background looks "
                          "like with --background instead, e.g. --background 'grass,sky'")
    repeated = duplicates(classes)
    if repeated:
        raise ConfigError(f"--classes: {repeated} given more than once (case ignored); name each class once, or its "
                          "pixels are split between identical labels")
    if len(classes) >= MAX_LABELS:
        raise ConfigError(f"--classes: {len(classes)} names; a mask holds at most {MAX_LABELS - 1} classes")
    if background:
        _refuse_background_classes(classes, background, "--background")
    return classes, background


def _refuse_background_classes(classes: list[str], background: list[str], where: str) -> None:
    clash = sorted({b.lower() for b in background} & {c.lower() for c in classes})
    if clash:
        raise ConfigError(f"--classes {clash} also in {where}: a class named as background is never predicted; "
                          "give --background without it (--background none: no phrases)")


def _names_a_config(args: argparse.Namespace) -> bool:
    """Whether the command line names a config (--config, --preset, --set) rather than leaving it to the checkpoint."""
    return args.preset is not None or bool(args.overrides) or Path(args.config) != Path(DEFAULT_CONFIG)


def _protocol_source(args: argparse.Namespace):
    """The eval settings and normalisation for a user's own images: the named config, else the checkpoint's own,
    else (weights without a config) the paper's."""
    from groupvit.evaluation.input_protocol import checkpoint_source, stored_experiment_config

    explicit = _config(args) if _names_a_config(args) else None
    return checkpoint_source(stored_experiment_config(args.checkpoint), ExperimentConfig(), explicit=explicit)


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment image files of any size with the checkpoint's own input protocol; overlay, mask and JSON per image."""
    from dataclasses import replace

    from groupvit.evaluation.input_protocol import check_overrides, resolve_geometry, summary, train_size_of
    from groupvit.evaluation.overlays import segment_files
    from groupvit.model import load_model

    classes, background = _segment_names(args)
    try:
        check_overrides(args.size, args.window, args.stride)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    checkpoint = Path(args.checkpoint)
    if not checkpoint.exists():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file or folder")
    source = _protocol_source(args)
    ev = source.eval if background is None else replace(source.eval, background_prompts=background)
    _refuse_background_classes(classes, list(ev.background_prompts), f"the background phrases of {source.origin}")
    model = load_model(checkpoint)
    geometry = resolve_geometry(ev, train_size_of(model), size=args.size, window=args.window, stride=args.stride)
    ev = geometry.apply(ev)
    grouper = None
    if args.grouper != "groupvit":
        from groupvit.evaluation import ClusterGrouper

        if not hasattr(model, "encode_image_tokens"):
            raise ConfigError(f"--grouper {args.grouper} clusters a plain ViT's patch tokens; {checkpoint} is a "
                              "GroupViT (use --grouper groupvit, or a vit_baselines checkpoint)")
        grouper = ClusterGrouper(model, args.grouper, ev)
    bg_thresh = args.bg_thresh if args.bg_thresh is not None else ev.bg_thresh
    print(summary(source, geometry, bg_thresh, ev.background_prompts))
    run = segment_files(model, args.images, classes, Path(args.out), ev, bg_thresh=bg_thresh, grouper=grouper,
                        mean=source.mean, std=source.std, checkpoint=str(checkpoint),
                        protocol={"source": source.origin, "geometry": geometry.describe()})
    for done in run.images:
        found = ", ".join(f"{c['name']} {100 * c['pixel_fraction']:.1f}%" for c in done.classes)
        print(f"{done.image.path}: {found} -> {done.overlay} (+ {done.mask.name}, {done.record.name})")
    for err in run.refused:
        print(f"groupvit segment: refused {err}", file=sys.stderr)
    if run.refused:
        print(f"groupvit segment: {len(run.refused)} of {len(args.images)} images refused", file=sys.stderr)
    return 1 if run.refused else 0


def cmd_classify(args: argparse.Namespace) -> int:
    """Zero-shot classification: an ImageNet-style folder (root/<class>/*.jpg) or the world's single-object crops."""
    from groupvit.atomic import atomic_write_json
    from groupvit.evaluation import evaluate_image_folder, evaluate_object_crops
    from groupvit.model import load_model

    cfg = _config(args)
    if args.variant:
        cfg = cfg.for_variant(args.variant)
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such file")
    model = load_model(args.checkpoint)
    norm = {"mean": cfg.data.augment.mean, "std": cfg.data.augment.std}
    if args.folder:
        from groupvit.evaluation.classification import load_image_folder

        eval_cfg = cfg.eval
        if not (_names_a_config(args) or args.variant):  # one's own folder: the checkpoint's own protocol
            source = _protocol_source(args)
            eval_cfg, norm = source.eval, {"mean": source.mean, "std": source.std}
            print(f"protocol: resize the short side to {eval_cfg.cls_resize} px, centre crop {eval_cfg.cls_crop} px "
                  f"(from {source.origin})")
        result = evaluate_image_folder(model, args.folder, eval_cfg, max_images=args.max_images, **norm)
        classes = len(load_image_folder(args.folder).class_names)
    else:
        dataset = _synthetic_split(cfg, args.split, args.root)
        result = evaluate_object_crops(model, dataset, cfg.eval, max_images=args.max_images, **norm)
        classes = len(dataset.foreground_prompts)
    record = {"checkpoint": args.checkpoint, "source": args.folder or f"synthetic/{args.split} object crops",
              "variant": args.variant, "preset": cfg.preset, "num_classes": classes, **result.to_dict()}
    if args.out:
        atomic_write_json(record, args.out)
    print(f"top-1 {result.top1:.4f}, top-5 {result.top5:.4f} on {result.num_images} images")
    return 0


def cmd_classification_table(args: argparse.Namespace) -> int:
    """The study's zero-shot classification results (results/<preset>/classification) as one table."""
    from groupvit.report.classification import write_classification_table

    cfg = _config(args)
    out = Path(args.out) if args.out else cfg.results_dir
    written = write_classification_table(cfg, out / "classification", out / "tables")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_groups(args: argparse.Namespace) -> int:
    """Each grouping stage's tokens with the patches of a folder's images they own most surely (groups.png/.json)."""
    from groupvit.evaluation.concepts import group_concepts, load_folder_images, write_concepts
    from groupvit.model import load_model

    cfg = _config(args)
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"CHECKPOINT {args.checkpoint}: no such file")
    model = load_model(args.checkpoint)
    size = args.image_size or model.cfg.image.image_size
    try:
        names, images = load_folder_images(args.folder, size, max_images=args.max_images)
        concepts = group_concepts(model, images, top_k=args.top_k, batch_size=cfg.eval.batch_size,
                                  mean=cfg.data.augment.mean, std=cfg.data.augment.std)
    except (FileNotFoundError, TypeError) as err:
        print(f"groupvit groups: {err}", file=sys.stderr)
        return 1
    written = write_concepts(concepts, names, images, args.out, title=f"{Path(args.checkpoint).name} on {args.folder}")
    used = [sum(1 for c in stage if c.patches) for stage in concepts.stages]
    print("; ".join(f"stage {s + 1}: {n} of {len(stage)} group tokens own patches"
                    for s, (n, stage) in enumerate(zip(used, concepts.stages))) + f" ({len(images)} images)")
    for path in written:
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A checkpoint as a Hugging Face GroupViTModel folder (hf) or its image side as a torch.export program."""
    from groupvit.model.export_hf import ExportError

    try:
        if args.format == "hf":
            from groupvit.model.export_hf import export_hf

            out, comparison = export_hf(args.checkpoint, args.out, overwrite=args.overwrite, atol=args.atol)
            print(f"wrote {out} (transformers.GroupViTModel.from_pretrained; largest difference from ours "
                  f"{comparison.max_diff():.2e}, argmax groups agree on {100 * comparison.hard_agreement:.1f}%)")
        else:
            from groupvit.model.export_image import PROGRAM_FILE, export_image_program

            aug = _config(args).data.augment
            out = export_image_program(args.checkpoint, args.out, image_size=args.image_size, mean=list(aug.mean),
                                       std=list(aug.std), overwrite=args.overwrite, atol=args.atol)
            print(f"wrote {out / PROGRAM_FILE} (torch.export.load; inputs and outputs in image_encoder.json)")
    except (ExportError, FileNotFoundError) as err:
        print(f"groupvit export: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_shards_from_folder(args: argparse.Namespace) -> int:
    """A folder of captioned images (side-car .txt or a CSV/TSV/JSONL table) -> shards in the downloads' layout."""
    from groupvit.data.pairs.folder import FolderDataError, FolderSettings, shards_from_folder

    pairs = _config(args).pairs
    given = {"image_size": args.image_size, "samples_per_shard": args.samples_per_shard, "workers": args.workers,
             "processes": args.processes, "min_caption_words": args.min_caption_words,
             "encode_quality": args.encode_quality}
    values = {k: getattr(pairs, k) for k in ("image_size", "samples_per_shard", "workers", "processes",
                                            "min_caption_words", "encode_quality", "resize_only_if_bigger")}
    values.update({k: v for k, v in given.items() if v is not None})
    floors = {"image_size": 1, "samples_per_shard": 1, "workers": 1, "processes": 1, "min_caption_words": 0,
              "encode_quality": 1}
    bad = [f"--{k.replace('_', '-')} {values[k]}" for k, low in floors.items() if values[k] < low]
    if bad or values["encode_quality"] > 100:
        raise ConfigError(f"shards-from-folder: out of range: {', '.join(bad) or '--encode-quality above 100'}")
    try:
        result = shards_from_folder(args.src, args.out, captions=args.captions, path_col=args.path_col,
                                    caption_col=args.caption_col, settings=FolderSettings(**values))
    except (FolderDataError, OSError) as err:
        print(f"groupvit shards-from-folder: {err}", file=sys.stderr)
        return 1
    t, f = result.totals, result.filter
    skipped = ", ".join(f"{k} {v}" for k, v in f["dropped"].items() if v) or "none"
    print(f"{args.out}: {t['successes']} of {f['read']} images in {t['shards']} shards (skipped before reading: "
          f"{skipped}; unreadable {t['failed_to_download']}, undecodable {t['failed_to_resize']}); "
          f"summary in {Path(args.out) / 'summary.md'}")
    return 0


def cmd_train_supervised(args: argparse.Namespace) -> int:
    """The "supervised, same budget" reference: the variant's ViT encoder + a per-token classifier trained on the
    world's masks for the preset's training budget (groupvit.supervised)."""
    import json

    from groupvit.supervised.train import train_supervised

    cfg = _config(args)
    if cfg.data.source != "synthetic":
        raise ConfigError(f"train-supervised: preset {cfg.preset!r} has data.source {cfg.data.source!r}; the "
                          "supervised reference needs the synthetic world's masks (data.source: synthetic)")
    if args.variant not in cfg.variants:
        raise ConfigError(f"--variant {args.variant!r} is not declared in preset {cfg.preset!r}; valid variants: "
                          f"{sorted(cfg.variants)}")
    if cfg.variants[args.variant].family != "supervised":
        raise ConfigError(f"--variant {args.variant!r} has family {cfg.variants[args.variant].family!r}; "
                          "train-supervised trains `family: supervised` variants (`groupvit train` the others)")
    out = Path(args.out) if args.out else Path("runs") / cfg.preset / args.variant / f"seed{args.seed}"
    summary = train_supervised(cfg.for_variant(args.variant, args.seed), out, variant=args.variant,
                               resume=not args.no_resume, train_dir=args.train_dir,
                               on_recipe_change=args.on_recipe_change, progress=not args.no_progress)
    print(json.dumps({k: summary.get(k) for k in ("variant", "seed", "steps", "final_loss", "samples_per_s")}))
    return 0


def add_tool_parsers(sub) -> None:
    """Register this module's subcommands on the `groupvit` parser's subparsers."""
    groupers = ["groupvit", "pixelwise", "kmeans", "meanshift", "spectral"]
    p = sub.add_parser(
        "segment", help="segment your own images with a checkpoint and a list of class names",
        description="Segment images of any size the way the checkpoint expects: resize the short side to its "
                    "protocol's size, slide windows over the long side, resize the prediction back. The protocol is "
                    "the checkpoint's own config (the paper's for official / Hugging Face weights) unless --config, "
                    "--preset or --set name one.")
    _add_config_args(p)
    p.add_argument("images", nargs="+")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--classes", required=True,
                   help="class names, comma-separated ('cat,dog,grass') or a text file with one name per line")
    p.add_argument("--background", default=None, help="phrases that mean background, comma-separated or a file "
                   "('none': no phrases; default: the protocol's eval.background_prompts)")
    p.add_argument("--size", type=int, default=None, help="short side the image is resized to (default: the "
                   "checkpoint's protocol, its training size for our models, 448 for official weights; 0 = keep)")
    p.add_argument("--window", type=int, default=None,
                   help="sliding-window side in px (default: the protocol's; 0 = one whole-image pass)")
    p.add_argument("--stride", type=int, default=None, help="sliding-window step in px (default: the protocol's)")
    p.add_argument("--grouper", default="groupvit", choices=groupers)
    p.add_argument("--bg-thresh", type=float, default=None, help="background threshold (default: eval.bg_thresh)")
    p.add_argument("--out", required=True,
                   help="folder for <name>_segment.png overlays, <name>_mask.png masks and <name>_segment.json")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("classify", help="zero-shot classification accuracy (image folder or synthetic object crops)")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--variant", default=None, help="apply this variant's eval overrides (and record its name)")
    p.add_argument("--folder", default=None, help="ImageNet-style root/<class_name>/*.jpg (default: world crops)")
    p.add_argument("--split", default="eval", choices=["eval", "val"])
    p.add_argument("--root", default=None, help="synthetic split folder (default: data/<preset>/synthetic/<split>)")
    p.add_argument("--max-images", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("classification-table",
                       help="a study's zero-shot classification results as one table, beside the paper's ImageNet top-1")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="results folder: reads OUT/classification/<variant>/seed<N>/*.json, "
                   "writes OUT/tables/zero_shot_classification.md/.csv (default: results/<preset>)")
    p.set_defaults(func=cmd_classification_table)

    p = sub.add_parser("groups", help="what the group tokens learned: each stage's tokens with the image patches "
                       "they own most surely (the paper's Figure 7)")
    _add_config_args(p)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a GroupViT checkpoint (model.pt, official .pth, HF)")
    p.add_argument("folder", metavar="IMAGE_FOLDER", help="images (searched recursively)")
    p.add_argument("--out", required=True, help="folder for groups.png and groups.json")
    p.add_argument("--top-k", type=int, default=8, help="patches shown per group token (default: %(default)s)")
    p.add_argument("--max-images", type=int, default=0, help="first N images by path (default: all)")
    p.add_argument("--image-size", type=int, default=0,
                   help="short side resize and centre crop (default: the model's training size)")
    p.set_defaults(func=cmd_groups)

    p = sub.add_parser("export", help="a checkpoint as a Hugging Face GroupViTModel folder, or its image side as a "
                       "torch.export program")
    _add_config_args(p)
    p.add_argument("checkpoint", help="our model.pt, an official .pth or an HF folder (any file load_model reads)")
    p.add_argument("out", help="output folder")
    p.add_argument("--format", required=True, choices=["hf", "torch-export"],
                   help="hf: config.json + model.safetensors for transformers.GroupViTModel.from_pretrained; "
                   "torch-export: image_encoder.pt2 (image -> embeddings, groups, pixel-to-group maps)")
    p.add_argument("--image-size", type=int, default=None,
                   help="torch-export: input size the program takes (default: the model's image_size)")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="largest difference from our model accepted when the export is checked (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("shards-from-folder", help="a folder of images with captions (side-car .txt or a table) -> "
                       "webdataset shards in the downloads' layout")
    _add_config_args(p)
    p.add_argument("src", help="folder of images (searched recursively)")
    p.add_argument("out", help="shard folder to write (or resume)")
    p.add_argument("--captions", default=None, help="CSV/TSV (with a header) or JSONL of image path (relative to "
                   "SRC) and caption; default: a .txt beside each image")
    p.add_argument("--path-col", default="", help="the table's image path column (default: path/image/file/...)")
    p.add_argument("--caption-col", default="", help="the table's caption column (default: caption/text/title)")
    p.add_argument("--image-size", type=int, default=None, help="short side in pixels (default: pairs.image_size)")
    p.add_argument("--samples-per-shard", type=int, default=None, help="default: pairs.samples_per_shard")
    p.add_argument("--encode-quality", type=int, default=None, help="JPEG quality (default: pairs.encode_quality)")
    p.add_argument("--min-caption-words", type=int, default=None, help="default: pairs.min_caption_words")
    p.add_argument("--workers", type=int, default=None, help="reader threads per process (default: pairs.workers)")
    p.add_argument("--processes", type=int, default=None, help="shards written at once (default: pairs.processes)")
    p.set_defaults(func=cmd_shards_from_folder)

    p = sub.add_parser("train-supervised", help="the supervised reference: the ViT encoder + a per-token classifier "
                       "trained on the synthetic world's masks for the same budget (resumes from its checkpoints)")
    _add_config_args(p)
    p.add_argument("--variant", default="supervised_same_budget", help="a `family: supervised` variant of the preset "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>/<variant>/seed<seed>)")
    p.add_argument("--train-dir", default=None, help="the world's train shards the rendered images are checked "
                   "against (default: data/<preset>/synthetic/train; skipped when absent)")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if checkpoints exist")
    p.add_argument("--on-recipe-change", choices=["error", "restart"], default="error",
                   help="when the run's checkpoints come from a different recipe: refuse (default) or train from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_supervised)
