"""The `groupvit` command: one entry point for people and for the Snakemake rules.

Every subcommand reads the same config file (config/config.yaml), resolves a preset and validates it, so a bad key
stops here with the key path in the message before any work starts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from groupvit.config import DEFAULT_CONFIG, ConfigError, ExperimentConfig, load_config

log = logging.getLogger("groupvit")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="config file (default: %(default)s)")
    parser.add_argument("--preset", default=None, help="preset name (default: the file's `preset`)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override one value of the resolved preset, e.g. --set train.steps=100 (repeatable)",
    )


def _config(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.preset, args.overrides)


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "docs":
        return _config_docs(check=args.check)
    cfg = _config(args)
    if args.action == "show":
        data = cfg.for_variant(args.variant).to_dict() if args.variant else cfg.to_dict()
        print(json.dumps(data, indent=2))
    else:
        print(f"{args.config}: preset {cfg.preset!r} is valid ({len(cfg.variants)} variants)")
    return 0


def _config_docs(check: bool) -> int:
    """Write config/README.md from the schema, or with check=True only report whether it is up to date."""
    from groupvit.config.docs import DOCS_PATH, REGENERATE, render_config_docs, write_config_docs

    if not check:
        print(f"wrote {write_config_docs()}")
        return 0
    if DOCS_PATH.exists() and DOCS_PATH.read_text() == render_config_docs():
        return 0
    print(f"groupvit: {DOCS_PATH} is not what the schema generates; regenerate it with `{REGENERATE}`", file=sys.stderr)
    return 1


def cmd_synth(args: argparse.Namespace) -> int:
    from groupvit.data.world.generate import generate_world

    cfg = _config(args)
    out = Path(args.out) if args.out else cfg.data_dir / "synthetic"
    card = generate_world(cfg.world, out, workers=args.workers, progress=not args.no_progress)
    print(f"wrote {out} (content hash {card.get('content_hash', '?')})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from groupvit.train import run_training
    from groupvit.train.distributed import world_info_from_env

    cfg = _config(args)
    out = Path(args.out) if args.out else Path("runs") / cfg.preset / args.variant / f"seed{args.seed}"
    summary = run_training(cfg, args.variant, args.seed, out, resume=not args.no_resume,
                           on_recipe_change=args.on_recipe_change)
    if world_info_from_env().is_master:  # one line per run, not one per torchrun process
        print(json.dumps({k: summary.get(k) for k in ("variant", "seed", "steps", "wall_time_s") if k in summary}))
    return 0


def _eval_dataset(cfg: ExperimentConfig, name: str, split: str, root: str | None):
    from groupvit.evaluation import load_eval_dataset

    if name == "synthetic":
        return load_eval_dataset("synthetic", root or cfg.data_dir / "synthetic" / split, split="val")
    from groupvit.evaluation.download.sets import reader_root

    return load_eval_dataset(name, root or reader_root(cfg.eval_data.root, name))


def cmd_download_eval(args: argparse.Namespace) -> int:
    """Download, verify, extract and convert real evaluation datasets (groupvit.evaluation.download.sets)."""
    from groupvit.evaluation.download.archive import UnsafeArchiveError
    from groupvit.evaluation.download.fetch import DownloadError
    from groupvit.evaluation.download.sets import EVAL_SETS, EvalDataError, prepare_eval_dataset

    cfg = _config(args)
    ed = cfg.eval_data
    names = list(EVAL_SETS) if args.dataset == "all" else [args.dataset]
    for name in names:
        try:
            path = prepare_eval_dataset(name, args.root or ed.root, downloads=args.downloads or ed.downloads or None,
                                        urls=ed.urls, sha256=ed.sha256,
                                        allow_unpinned=args.allow_unpinned or ed.allow_unpinned)
        except (DownloadError, EvalDataError, UnsafeArchiveError) as err:
            print(f"groupvit download-eval: {name}: {err}", file=sys.stderr)
            return 1
        print(f"{name}: ready under {path}")
    return 0


def _segmenter(cfg: ExperimentConfig, model, class_names, grouper_name: str, dataset: str | None):
    from groupvit.evaluation import ClusterGrouper, ZeroShotSegmenter
    from groupvit.evaluation.readout import OFFICIAL_GROUPER, official_eval

    own = grouper_name in ("groupvit", OFFICIAL_GROUPER)  # the model's own groups, the preset's or the paper's readout
    grouper = None if own else ClusterGrouper(model, grouper_name, cfg.eval)
    ev = official_eval(cfg.eval) if grouper_name == OFFICIAL_GROUPER else cfg.eval
    return ZeroShotSegmenter(
        model, class_names, ev, dataset=dataset, grouper=grouper,
        mean=cfg.data.augment.mean, std=cfg.data.augment.std,
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Zero-shot segmentation of one checkpoint on one dataset, plus the oracle-labelled grouping score."""
    from groupvit.evaluation import ModelGrouper, score_split
    from groupvit.evaluation.readout_stats import readout_stats
    from groupvit.evaluation.split_score import gated_mious
    from groupvit.model import load_model

    cfg = _config(args)
    if args.variant:
        cfg = cfg.for_variant(args.variant)
    if not Path(args.checkpoint).is_file():  # before minutes of dataset / model setup
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such file (the released GroupViT weights and where to "
                          f"download them: README, 'Real data: evaluation sets and the paper preset')")
    dataset = _eval_dataset(cfg, args.dataset, args.split, args.root)
    if args.grouper == "supervised":  # the supervised reference: per-pixel argmax, no groups
        return _evaluate_supervised(args, cfg, dataset)
    try:
        model = load_model(args.checkpoint)
    except ValueError as err:  # the loader's message names the file and what it holds
        from groupvit.model.checkpoint import OtherFormatCheckpoint
        from groupvit.supervised.model import FORMAT as SUPERVISED

        supervised = isinstance(err, OtherFormatCheckpoint) and err.format == SUPERVISED
        hint = "; score it with --grouper supervised" if supervised else ""
        raise ConfigError(f"--checkpoint {err}{hint}") from None
    segmenter = _segmenter(cfg, model, dataset.class_names, args.grouper, args.dataset)
    scored = score_split(segmenter, dataset, max_images=cfg.eval.max_images, bootstrap=cfg.eval.bootstrap,
                         seed=cfg.eval.cluster_seed)
    result = scored.result
    name = args.model or (args.variant if args.grouper == "groupvit" else f"{args.variant}_{args.grouper}")
    extra = {
        "variant": args.variant, "grouper": args.grouper, "split": args.split, "preset": cfg.preset,
        "mIoU_foreground": scored.objects_miou,
        "oracle_mIoU": scored.oracle.miou,
        "floor_mIoU": scored.floor.miou,
    }
    extra["class_gate_mIoU"] = gated_mious(segmenter, dataset, max_images=cfg.eval.max_images)
    if isinstance(segmenter.grouper, ModelGrouper):  # the model's own groups: how many of them each readout uses
        extra["readout_stats"] = readout_stats(segmenter, dataset, max_images=cfg.eval.max_images)
    return _write_evaluation(args, result, name, segmenter.protocol(), extra,
                             f"oracle groups {scored.oracle.miou:.4f}")


def _write_evaluation(args: argparse.Namespace, result, name: str, protocol: dict, extra: dict, what: str) -> int:
    """The metrics JSON and the per-class CSV beside it, and one line saying where they went."""
    from groupvit.evaluation import write_metrics_json, write_per_class_csv

    out = Path(args.out)
    write_metrics_json(out, result, model=name, dataset=args.dataset, protocol=protocol, checkpoint=args.checkpoint,
                       extra=extra)
    write_per_class_csv(out.with_name(out.stem + "_per_class.csv"), result, model=name, dataset=args.dataset)
    print(f"{name} on {args.dataset}/{args.split}: mIoU {result.miou:.4f} (foreground {extra['mIoU_foreground']}; "
          f"{what}) -> {out}")
    return 0


def _evaluate_supervised(args: argparse.Namespace, cfg: ExperimentConfig, dataset) -> int:
    """`evaluate --grouper supervised`: a `train-supervised` model.pt scored into the same metrics files (no groups,
    so no oracle score)."""
    from groupvit.evaluation.split_score import objects_miou
    from groupvit.supervised.evaluate import SupervisedSegmenter, score_supervised
    from groupvit.supervised.model import load_supervised

    try:
        model = load_supervised(args.checkpoint)
        segmenter = SupervisedSegmenter(model, dataset.class_names, cfg.eval, mean=cfg.data.augment.mean,
                                        std=cfg.data.augment.std)
    except ValueError as err:
        raise ConfigError(f"--grouper supervised: {err}") from None
    result, floor = score_supervised(segmenter, dataset, max_images=cfg.eval.max_images,
                                     bootstrap=cfg.eval.bootstrap, seed=cfg.eval.cluster_seed)
    name = args.model or args.variant or "supervised"
    extra = {"variant": args.variant, "grouper": "supervised", "split": args.split, "preset": cfg.preset,
             "mIoU_foreground": objects_miou(result), "oracle_mIoU": None, "floor_mIoU": floor.miou}
    return _write_evaluation(args, result, name, segmenter.protocol(), extra, "supervised reference")


def cmd_download_pairs(args: argparse.Namespace) -> int:
    """URL/caption lists -> webdataset shards (groupvit.data.pairs): the preset's `pairs` datasets, or --list."""
    from dataclasses import replace

    from groupvit.data.pairs.config import PairsDatasetConfig
    from groupvit.data.pairs.download import download_dataset
    from groupvit.data.pairs.layout import dataset_dir

    cfg = _config(args)
    given = {"backend": args.backend, "image_size": args.image_size, "samples_per_shard": args.samples_per_shard,
             "workers": args.workers, "processes": args.processes, "retries": args.retries, "timeout": args.timeout,
             "min_caption_words": args.min_caption_words, "img2dataset_executable": args.img2dataset_executable}
    pairs = replace(cfg.pairs, **{k: v for k, v in given.items() if v is not None})
    floors = {"image_size": 1, "samples_per_shard": 1, "workers": 1, "processes": 1, "retries": 0,
              "min_caption_words": 0, "timeout": 1e-3}
    bad = [f"--{k.replace('_', '-')} {getattr(pairs, k)}" for k, low in floors.items() if getattr(pairs, k) < low]
    if bad:
        raise ConfigError(f"download-pairs: out of range: {', '.join(bad)}")
    if args.list:
        if not (args.format and args.out):
            raise ConfigError("download-pairs --list also needs --format and --out")
        out = Path(args.out)
        jobs = [(PairsDatasetConfig(name=out.name, format=args.format, url_list=args.list[0]), out, args.list)]
    else:
        known = {d.name: d for d in pairs.datasets}
        unknown = sorted(set(args.dataset) - set(known))
        if not known:
            raise ConfigError(f"preset {cfg.preset!r} declares no pairs.datasets; give --list, --format and --out")
        if unknown:
            raise ConfigError(f"--dataset {unknown}: not in the pairs.datasets of preset {cfg.preset!r}; "
                              f"declared: {sorted(known)}")
        jobs = [(known[name], Path(args.out) / name if args.out else Path(dataset_dir(pairs, cfg.preset, name)), None)
                for name in args.dataset or known]
    for dataset, out, lists in jobs:
        try:
            result = download_dataset(dataset, pairs, out, list_files=lists)
        except (RuntimeError, OSError, ValueError) as err:  # DownloadError, missing list/img2dataset, bad list
            print(f"groupvit download-pairs: {dataset.name}: {err}", file=sys.stderr)
            return 1
        t = result.totals
        print(f"{dataset.name}: {t['successes']} of {t['count']} URLs downloaded ({100 * t['success_rate']:.1f}%) "
              f"in {t['shards']} shards -> {out}")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from groupvit.report.build import build_tables

    cfg = _config(args)
    out = Path(args.out) if args.out else cfg.results_dir
    metrics_dir = Path(args.metrics) if args.metrics else out / "metrics"
    runs_dir = Path(args.runs) if args.runs else Path("runs") / cfg.preset
    names = build_tables(cfg, metrics_dir, runs_dir, out)
    print(f"wrote {', '.join(names)} under {out / 'tables'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groupvit", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="show or validate the resolved config of a preset; docs: write config/README.md")
    p.add_argument("action", choices=["show", "validate", "docs"])
    p.add_argument("--variant", default=None, help="show the config a variant trains with")
    p.add_argument("--check", action="store_true", help="docs: only exit 1 when config/README.md is out of date")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("synth", help="generate the synthetic image-caption-mask world")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="output folder (default: data/<preset>/synthetic)")
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="pretrain one variant with one seed (resumes from the run's last checkpoint)")
    _add_config_args(p)
    p.add_argument("--variant", required=True, help="a variant declared in the preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default: runs/<preset>/<variant>/seed<seed>)")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if checkpoints exist")
    p.add_argument("--on-recipe-change", choices=["error", "restart"], default="error",
                   help="when the run's checkpoints come from a different recipe: refuse (default) or train from scratch")
    p.set_defaults(func=cmd_train)

    groupers = ["groupvit", "official_readout", "pixelwise", "kmeans", "meanshift", "spectral", "supervised"]
    p = sub.add_parser("evaluate", help="zero-shot segmentation of a checkpoint on a dataset")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True, help="our model.pt, an official .pth or a Hugging Face state dict")
    p.add_argument("--variant", default=None, help="apply this variant's eval overrides")
    p.add_argument("--grouper", default="groupvit", choices=groupers,
                   help="groups from the model (groupvit: the preset's readout; official_readout: soft maps and "
                        "segment-token embeddings, as published) or non-parametric grouping of ViT patch features; "
                        "supervised: a train-supervised model.pt, per-pixel argmax (the reference row)")
    p.add_argument("--dataset", default="synthetic", choices=["synthetic", "voc", "context", "coco_object"])
    p.add_argument("--split", default="eval", choices=["eval", "val"],
                   help="synthetic only: eval (reported) or val (for tuning decisions)")
    p.add_argument("--root", default=None, help="dataset folder (default: the dataset's standard place under data/)")
    p.add_argument("--model", default=None, help="name recorded in the metrics (default: variant[_grouper])")
    p.add_argument("--out", required=True, help="metrics JSON path (a _per_class.csv is written beside it)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("download-eval", help="download, verify and convert VOC / Context / COCO-Object for evaluation")
    _add_config_args(p)
    p.add_argument("--dataset", required=True, choices=["voc", "context", "coco_object", "all"])
    p.add_argument("--root", default=None, help="parent folder of the datasets (default: eval_data.root, data)")
    p.add_argument("--downloads", default=None, help="archive folder (default: eval_data.downloads or ROOT/downloads)")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="accept files with no published checksum (records and prints the sha256 it gets)")
    p.set_defaults(func=cmd_download_eval)

    p = sub.add_parser("download-pairs", help="URL/caption lists (CC3M, CC12M, YFCC, RedCaps) -> webdataset shards")
    _add_config_args(p)
    p.add_argument("--dataset", action="append", default=[], help="a pairs.datasets name (repeatable; default: all)")
    p.add_argument("--list", action="append", default=[], help="list file, folder or glob instead of the preset's "
                   "datasets (repeatable; needs --format and --out)")
    p.add_argument("--format", default=None, choices=["cc3m", "cc12m", "yfcc", "redcaps", "tsv", "csv"])
    p.add_argument("--out", default=None, help="with --list: the shard folder; else the parent of the dataset "
                   "folders (default: pairs.output_dir or data/<preset>/shards)")
    p.add_argument("--backend", default=None, choices=["builtin", "img2dataset"])
    p.add_argument("--image-size", type=int, default=None, help="short side in pixels (default: pairs.image_size)")
    p.add_argument("--samples-per-shard", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="fetch threads per process")
    p.add_argument("--processes", type=int, default=None, help="shards downloaded at once")
    p.add_argument("--retries", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds per request")
    p.add_argument("--min-caption-words", type=int, default=None)
    p.add_argument("--img2dataset-executable", default=None, help="the separate install's img2dataset")
    p.set_defaults(func=cmd_download_pairs)

    p = sub.add_parser("tables", help="the paper's tables from a study's metrics, with the published numbers beside")
    _add_config_args(p)
    p.add_argument("--metrics", default=None, help="metrics folder (default: results/<preset>/metrics)")
    p.add_argument("--runs", default=None, help="training runs folder (default: runs/<preset>)")
    p.add_argument("--out", default=None, help="results folder (default: results/<preset>)")
    p.set_defaults(func=cmd_tables)



    from groupvit.cli_tools import add_tool_parsers  # your own images, data and models

    add_tool_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"groupvit: config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
