"""The emergence study: train one configuration of the embedded world, score it on the VALIDATION split
(tuning decisions never look at the eval split the tables report), and append one JSON line per scored checkpoint
to results/studies/emergence.jsonl. Diagnostics beside mIoU say *why* a run fails: image-level zero-shot
recognition (mAP of the pooled embedding against class prompts), oracle-labelled group mIoU (grouping alone) and
the number of groups in use per image (collapse).

    python studies/emergence.py --name base --variant groupvit_2stage
    python studies/emergence.py --name vit --variant vit_baselines --grouper kmeans --grouper pixelwise
    python studies/emergence.py --name big-objects --set world.object_size='[0.4,0.6]' --curve

Runs live in runs/emergence/<name>/ and resume when repeated; --curve scores every kept checkpoint (learning curve).
`python studies/emergence.py summarize` writes the log as a Markdown table of every run to
results/studies/emergence_runs.md;
`python studies/emergence.py curves [RUN ...]` plots results/studies/learning_curves.png;
`python studies/emergence.py naming RUN_DIR ...` scores any trained run's segment naming (see naming_contrast);
`--existing RUN_DIR` scores a finished run of the workflow (e.g. runs/default/groupvit_2stage/seed0) without training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from groupvit.config import load_config
from groupvit.dataclass_io import to_dict
from groupvit.data.world.generate import generate_world
from groupvit.evaluation import (
    ClusterGrouper, ZeroShotSegmenter, evaluate_group_oracle, evaluate_segmentation, objects_miou, score_split,
)
from groupvit.evaluation import load_eval_dataset
from groupvit.model import build_model, model_config_from_dict
from groupvit.train import run_training
from groupvit.train.checkpointing import load_train_state

LOG = Path("results/studies/emergence.jsonl")
WORLD_ROOT = Path("data/emergence")  # one generated world per world config, keyed by its hash


def model_from_train_state(path: Path) -> torch.nn.Module:
    state = load_train_state(path)
    model = build_model(model_config_from_dict(state["config"]["model"]))
    model.load_state_dict(state["model"])
    return model.eval()


@torch.no_grad()
def recognition_map(model, dataset, class_names: list[str], templates: list[str], limit: int) -> float:
    """Image-level zero-shot recognition: mean average precision of cos(image, class prompt) for presence."""
    from sklearn.metrics import average_precision_score

    from groupvit.evaluation.text import class_text_embeddings

    text = class_text_embeddings(model, class_names, templates)
    scores, present = [], []
    for i in range(min(limit, len(dataset))):
        item = dataset[i]
        image = torch.from_numpy(np.array(item.image)).permute(2, 0, 1).float().div(255)
        mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
        std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        emb = model.encode_image(((image - mean) / std)[None])
        scores.append((emb @ text.T)[0].numpy())
        present.append([(np.asarray(item.mask) == c + 1).any() for c in range(len(class_names))])
    scores, present = np.array(scores), np.array(present)
    aps = [average_precision_score(present[:, c], scores[:, c]) for c in range(len(class_names)) if present[:, c].any()]
    return float(np.mean(aps))


def groups_in_use(segmenter: ZeroShotSegmenter, dataset, limit: int, min_share: float = 0.02) -> list[float]:
    """Mean number of groups per image covering at least `min_share` of the pixels, for each stage."""
    counts = []
    for i in range(min(limit, len(dataset))):
        maps = segmenter.group_maps(dataset[i].image)
        counts.append([sum(np.bincount(m.ravel()) / m.size >= min_share) for m in maps])
    return [float(x) for x in np.mean(np.array(counts), axis=0)] if counts else []


@torch.no_grad()
def naming_contrast(model, cfg, dataset, limit: int) -> dict:
    """Do segments say what they hold? With hard (argmax) stage maps, for each object class in an image that has both
    a group whose majority is that object and a majority-background group: is the object's group closer to the
    class prompt than every background group? 1 = segments name their members; chance (at most 0.5, less when an image
    has several background groups) = segments carry the whole image."""
    import torch.nn.functional as F

    from groupvit.evaluation.grouping import ModelGrouper
    from groupvit.evaluation.preprocess import normalize
    from groupvit.evaluation.text import class_text_embeddings

    names = list(dataset.class_names[1:])
    text = F.normalize(class_text_embeddings(model, names, cfg.eval.templates), dim=-1)
    grouper = ModelGrouper(model, "hard", cfg.eval.segment_embeds)
    wins = cases = 0
    for i in range(min(limit, len(dataset))):
        item = dataset[i]
        x = torch.from_numpy(np.array(item.image)).permute(2, 0, 1).float().div(255)
        groups = grouper(normalize(x, cfg.data.augment.mean, cfg.data.augment.std)[None])
        owner = F.interpolate(groups.pixel_to_group.float(), size=x.shape[-2:], mode="bilinear").argmax(1)[0].numpy()
        cos = (F.normalize(groups.group_embeds[0], dim=-1) @ text.t()).numpy()
        mask = np.asarray(item.mask)
        majority = {}
        for g in np.unique(owner):
            labels = mask[(owner == g) & (mask != dataset.ignore_index)]
            if labels.size:
                majority[int(g)] = int(np.bincount(labels).argmax())
        background = [g for g, c in majority.items() if c == 0]
        for c in set(majority.values()) - {0}:
            if background:
                cases += 1
                wins += max(cos[g, c - 1] for g, m in majority.items() if m == c) > max(cos[g, c - 1] for g in background)
    return {"object_group_wins": float(wins / cases) if cases else None, "cases": cases}


def score(model, cfg, dataset, grouper: str, limit: int) -> dict:
    cluster = None if grouper == "groupvit" else ClusterGrouper(model, grouper, cfg.eval)
    segmenter = ZeroShotSegmenter(model, dataset.class_names, cfg.eval, dataset="synthetic", grouper=cluster,
                                  mean=cfg.data.augment.mean, std=cfg.data.augment.std)
    scored = score_split(segmenter, dataset, max_images=limit)
    result = scored.result
    fg = [v for v in result.iou[1:] if not math.isnan(v)]
    record = {
        "grouper": grouper, "mIoU": result.miou, "mIoU_foreground": scored.objects_miou, "oracle_mIoU": scored.oracle.miou,
        "floor_mIoU": scored.floor.miou, "classes_found": int(sum(v > 0 for v in fg)),
        "per_class_IoU": dict(zip(result.class_names, [None if math.isnan(v) else round(float(v), 4) for v in result.iou])),
    }
    # The background threshold is a protocol constant tuned per dataset in the paper; on this world it is tuned on the
    # validation split here, so a model whose objects score just under the default threshold is not called blind.
    sweep = {}
    for thresh in (0.0, 0.2, 0.35, 0.5, 0.65, 0.8):
        seg = ZeroShotSegmenter(model, dataset.class_names, cfg.eval, dataset="synthetic", bg_thresh=thresh,
                                grouper=cluster, mean=cfg.data.augment.mean, std=cfg.data.augment.std)
        swept = evaluate_segmentation(seg, dataset, max_images=limit)
        fg_t = objects_miou(swept)
        sweep[str(thresh)] = [round(swept.miou, 4), None if fg_t is None else round(fg_t, 4)]
    record["bg_thresh_sweep"] = sweep
    if grouper == "groupvit":  # the same model read out with the hard (argmax) assignment maps instead of soft ones
        other = "hard" if cfg.eval.assignment == "soft" else "soft"
        seg = ZeroShotSegmenter(model, dataset.class_names, dataclasses.replace(cfg.eval, assignment=other),
                                dataset="synthetic", mean=cfg.data.augment.mean, std=cfg.data.augment.std)
        swept = evaluate_segmentation(seg, dataset, max_images=limit)
        record[f"{other}_assignment"] = {
            "mIoU": swept.miou, "mIoU_foreground": objects_miou(swept),
            "oracle_mIoU": evaluate_group_oracle(seg, dataset, max_images=limit).miou,
            "groups_in_use": groups_in_use(seg, dataset, min(limit, 100)),
        }
        record["naming_contrast"] = naming_contrast(model, cfg, dataset, min(limit, 100))
    if grouper == "groupvit":
        record["groups_in_use"] = groups_in_use(segmenter, dataset, min(limit, 100))
    record["recognition_mAP"] = recognition_map(model, dataset, list(dataset.class_names[1:]), cfg.eval.templates,
                                                min(limit, 200))
    return record


RUNS_TABLE = LOG.with_name("emergence_runs.md")


def summarize(path: Path = LOG) -> str:
    """The study log as a Markdown table: the final checkpoint of each run and scorer, in log order, on the
    validation split, with the settings the run changed against the default preset."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    final = {}
    for r in records:
        if r["step"] == r["total_steps"]:
            final[(r["name"], r["grouper"])] = r
    lines = ["# Emergence study: every run", "",
             f"Generated by `python studies/emergence.py summarize` from `{path}` ({len(final)} runs); validation "
             "split, final checkpoint of each run. mIoU in %, floor = an all-background prediction. `world` is the "
             "hash of the world config the run trained on.", "",
             "| run | variant | seed | settings changed | world | scorer | steps | train min | samples/s "
             "| recognition mAP | mIoU (floor) | objects mIoU | oracle mIoU | classes > 0 "
             "| groups per image (stage 1, 2) | hard readout: mIoU / oracle / groups | naming: object group wins "
             "| note |",
             "|" + " --- |" * 18]
    for (name, grouper), r in final.items():
        groups = ", ".join(f"{g:.1f}" for g in r.get("groups_in_use", [])) or "-"
        other = r.get("hard_assignment")
        hard = (f"{100 * other['mIoU']:.1f} / {100 * other['oracle_mIoU']:.1f} / "
                + ", ".join(f"{g:.1f}" for g in other["groups_in_use"])) if other else "-"
        naming = r.get("naming_contrast") or {}
        wins = f"{naming['object_group_wins']:.2f} ({naming['cases']})" if naming.get("object_group_wins") is not None else "-"
        floor = f" ({100 * r['floor_mIoU']:.1f})" if r.get("floor_mIoU") is not None else ""
        settings = "<br>".join(f"`{o}`" for o in r.get("overrides", [])) or "-"
        note = (r.get("note") or "-").replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {name} | {r.get('variant', '-')} | {r.get('seed', '-')} | {settings} | {r.get('world', '-')} "
            f"| {grouper} | {r['total_steps']} | {r['train_time_s'] / 60:.1f} | {r['samples_per_s']:.0f} "
            f"| {r['recognition_mAP']:.2f} | {100 * r['mIoU']:.1f}{floor} "
            f"| {100 * (r['mIoU_foreground'] or 0):.1f} | {100 * r['oracle_mIoU']:.1f} | {r['classes_found']} "
            f"| {groups} | {hard} | {wins} | {note} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(path: Path = LOG, out: Path = RUNS_TABLE) -> Path:
    """Write summarize()'s table to results/studies/emergence_runs.md."""
    out.write_text(summarize(path))
    return out


def learning_curves(path: Path = LOG, out: Path = LOG.with_name("learning_curves.png"),
                    names: list[str] | None = None) -> Path:
    """Recognition mAP and mIoU against training steps for the runs scored with --curve (all, or `names`), with the
    all-background floor, so a reader sees when (and whether) segmentation appears."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    records = [r for r in records if names is None or r["name"] in names]
    runs = sorted({(r["name"], r["grouper"]) for r in records}, key=lambda run: (names or []).index(run[0])
                  if names and run[0] in names else 0)
    for name, grouper in runs:
        rs = sorted((r for r in records if r["name"] == name and r["grouper"] == grouper), key=lambda r: r["step"])
        steps = [r["step"] for r in rs]
        label = f"{name} ({grouper})"
        axes[0].plot(steps, [r["recognition_mAP"] for r in rs], marker="o", label=label)
        axes[1].plot(steps, [100 * r["mIoU"] for r in rs], marker="o", label=label)
        axes[2].plot(steps, [100 * (r["mIoU_foreground"] or 0) for r in rs], marker="o", label=label)
    floors = [100 * r["floor_mIoU"] for r in records if "floor_mIoU" in r]
    if floors:
        axes[1].axhline(min(floors), color="grey", ls="--", label="all-background floor")
        axes[1].legend(fontsize=7)
    for ax, title in zip(axes, ["image-level recognition mAP", "mIoU (%)", "objects-only mIoU (%)"]):
        ax.set_title(title)
        ax.set_xlabel("training step (batch 64)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Emergence study, validation split")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "summarize":
        print(write_summary())
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "naming":  # naming RUN_DIR ... (any trained model.pt)
        from groupvit.model import load_model

        cfg = load_config(preset="default")
        dataset = load_eval_dataset("synthetic", WORLD_ROOT / _world_key(cfg) / "val", split="val")
        for run in sys.argv[2:]:
            print(run, naming_contrast(load_model(Path(run) / "model.pt"), cfg, dataset, 100))
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "curves":  # curves [RUN ...]
        print(learning_curves(names=sys.argv[2:] or None))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--variant", default="groupvit_2stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--grouper", action="append", default=None)
    parser.add_argument("--val-images", type=int, default=300)
    parser.add_argument("--curve", action="store_true", help="also score every kept intermediate checkpoint")
    parser.add_argument("--note", default="")
    parser.add_argument("--existing", type=Path, default=None,
                        help="score this finished run folder (model.pt + summary.json, e.g. runs/default/VARIANT/seedN) "
                             "instead of training runs/emergence/NAME")
    args = parser.parse_args(argv)

    overrides = list(args.overrides) + (["train.keep_checkpoints=1000"] if args.curve else [])
    cfg = load_config(preset=args.preset, overrides=overrides)
    world_dir = WORLD_ROOT / _world_key(cfg)
    if not (world_dir / "datacard.json").exists():
        generate_world(cfg.world, world_dir, workers=2, progress=True)
    started = time.time()
    if args.existing is not None:
        run_dir = args.existing
        summary = json.loads((run_dir / "summary.json").read_text())
    else:
        run_dir = Path("runs/emergence") / args.name
        summary = run_training(cfg, args.variant, args.seed, run_dir, data_dir=world_dir)
    variant_cfg = cfg.for_variant(args.variant, args.seed)
    dataset = load_eval_dataset("synthetic", world_dir / "val", split="val")
    groupers = args.grouper or (["groupvit"] if cfg.variants[args.variant].family == "groupvit" else ["kmeans"])
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*.pt")) if args.curve else []
    targets = [(int(p.stem.split("-")[1]), model_from_train_state(p)) for p in checkpoints]
    if not targets or targets[-1][0] != summary["steps"]:
        from groupvit.model import load_model

        targets.append((summary["steps"], load_model(run_dir / "model.pt")))
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for step, model in targets:
        for grouper in groupers:
            record = {
                "name": args.name, "variant": args.variant, "seed": args.seed, "overrides": args.overrides,
                "note": args.note, "step": step, "total_steps": summary["steps"],
                "train_time_s": summary.get("train_time_s"), "samples_per_s": summary.get("samples_per_s"),
                "final_loss": summary.get("final_loss"), "world": _world_key(cfg),
                **score(model, variant_cfg, dataset, grouper, args.val_images),
            }
            with open(LOG, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"{args.name} step {step} {grouper}: mIoU {record['mIoU']:.3f} fg {record['mIoU_foreground']:.3f} "
                  f"oracle {record['oracle_mIoU']:.3f} recog-mAP {record['recognition_mAP']:.3f} "
                  f"classes {record['classes_found']} groups {record.get('groups_in_use')} "
                  f"naming {record.get('naming_contrast')} bg sweep {record['bg_thresh_sweep']} other readout {record.get('hard_assignment') or record.get('soft_assignment')}",
                  flush=True)
    print(f"total {time.time() - started:.0f}s")
    return 0


def _world_key(cfg) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(to_dict(cfg.world), sort_keys=True).encode()).hexdigest()[:12]


if __name__ == "__main__":
    raise SystemExit(main())
