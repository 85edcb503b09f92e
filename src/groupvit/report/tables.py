"""The paper's tables, filled with this study's numbers (mean +- std over seeds, mIoU in %), each beside the
published figures, plus the checks of which of the paper's orderings hold here.

A variant lands in a table by what its resolved config changes relative to the main variant, not by its name, so
adding a variant to the config is enough for it to appear in the right table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from groupvit.config import ExperimentConfig, to_dict
from groupvit.report.collect import variant_attributes
from groupvit.report.readout_row import official_readout_note, place_official_row
from groupvit.report.reference_row import place_reference_rows, reference_note

# Config keys each ablation table may vary (everything else must equal the reference variant's).
TABLE_KEYS = {
    "assignment_x_multilabel": {
        "model.image.hard_assignment", "model.image.gumbel", "train.loss.multi_label_weight", "data.multi_label_nouns",
    },
    "group_tokens": {"model.image.num_group_tokens", "model.image.num_output_groups"},
    "stages": {"model.image.depths", "model.image.num_group_tokens", "model.image.num_output_groups"},
    "text_encoder": {"model.text.kind", "model.text.context_length", "model.text.width", "model.text.layers",
                     "model.text.heads", "model.text.freeze"},
}
ABLATION_TABLES = tuple(TABLE_KEYS)  # the ablation tables the report writes, in its order
IGNORED_KEYS = {"preset", "description", "train.seed", "variants", "study"}


def paper_numbers() -> dict:
    text = resources.files("groupvit.report").joinpath("paper_numbers.yaml").read_text()
    return yaml.safe_load(text)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if path in IGNORED_KEYS:
            continue
        if isinstance(value, dict):
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def differing_keys(cfg: ExperimentConfig, variant: str, reference: str) -> set[str]:
    a, b = _flat(to_dict(cfg.for_variant(variant))), _flat(to_dict(cfg.for_variant(reference)))
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def paper_deviations(cfg: ExperimentConfig, paper_cfg: ExperimentConfig | None = None) -> pd.DataFrame:
    """Every key whose value in `cfg` differs from the paper's recipe (the dataclass defaults, or `paper_cfg`: the
    `paper` preset, for presets built on it), with both values: the report lists a preset's CPU-scale deviations from
    this, so none can be forgotten or typed in by hand."""
    ours, paper = _flat(to_dict(cfg)), _flat(to_dict(paper_cfg or ExperimentConfig()))
    rows = [(k, ours[k], paper.get(k)) for k in sorted(ours) if ours[k] != paper.get(k)]
    return pd.DataFrame(rows, columns=["key", "this preset", "paper"])


def reference(cfg: ExperimentConfig, table: str) -> str:
    """The variant a table's rows are compared with: the main model, except for Table 2, which the paper measures on
    1-stage models (its 1-stage variant when the study has one)."""
    main = cfg.study.main_variant
    if table == "group_tokens":
        one_stage = [v for v in cfg.study.variants if cfg.variants[v].family == "groupvit"
                     and len(cfg.for_variant(v).model.image.num_output_groups) == 1
                     and differing_keys(cfg, v, main) <= TABLE_KEYS["stages"]]
        if one_stage:
            return one_stage[0]
    return main


def members(cfg: ExperimentConfig, table: str) -> list[str]:
    """GroupViT variants of the study that differ from the table's reference variant only in the table's keys."""
    ref = reference(cfg, table)
    found = [
        v for v in cfg.study.variants
        if cfg.variants[v].family == "groupvit" and differing_keys(cfg, v, ref) <= TABLE_KEYS[table]
    ]
    if table == "stages":  # Table 2's other token counts belong to Table 2; Table 3 keeps its 1-stage reference
        one_stage = reference(cfg, "group_tokens")
        found = [v for v in found if v == one_stage or v not in members(cfg, "group_tokens")]
    return found


def _differs(cfg: ExperimentConfig, variant: str, ref: str) -> str:
    keys = sorted(differing_keys(cfg, variant, ref))
    return "(reference)" if variant == ref else ", ".join(keys)


def fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if n > 1 and not math.isnan(std):
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.1f}"


def class_gates(metrics: pd.DataFrame) -> list[int]:
    """The k of every top-k class gate the evaluations scored (their class_gate_mIoU), from the metrics' columns."""
    return sorted(int(c.removeprefix("mIoU_top")) for c in metrics.columns if c.startswith("mIoU_top"))


def seed_stats(metrics: pd.DataFrame, value: str = "mIoU") -> pd.DataFrame:
    """mean, std and seed count of `value` per (model, dataset)."""
    grouped = metrics.groupby(["model", "dataset"])[value]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    return stats.rename(columns={"mean": f"{value}_mean", "std": f"{value}_std", "count": "seeds"})


@dataclass
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""

    def to_markdown(self) -> str:
        cols = list(self.frame.columns)
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("| " + " | ".join("---" for _ in cols) + " |")
        for _, row in self.frame.iterrows():
            lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / f"{self.name}.csv", self.frame.to_csv(index=False))
        atomic_write_text(out_dir / f"{self.name}.md", self.to_markdown())


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def atomic_write_text(path: Path, text: str) -> None:
    from groupvit.atomic import atomic_write_text

    atomic_write_text(path, text)


def _ours(stats: pd.DataFrame, model: str, dataset: str, value: str = "mIoU") -> tuple[float, float, int]:
    row = stats[(stats.model == model) & (stats.dataset == dataset)]
    if row.empty:
        return float("nan"), float("nan"), 0
    r = row.iloc[0]
    return float(r[f"{value}_mean"]), float(r[f"{value}_std"]), int(r["seeds"])


def main_table(cfg: ExperimentConfig, metrics: pd.DataFrame) -> Table:
    """Every scored model on every dataset, with foreground-only and oracle-labelled mIoU beside it."""
    rows = []
    for (model, dataset), group in metrics.groupby(["model", "dataset"], sort=False):
        n = len(group)
        rows.append({
            "model": model, "dataset": dataset, "seeds": n,
            "mIoU": fmt(group["mIoU"].mean(), group["mIoU"].std(), n),
            "mIoU (objects only)": fmt(group["mIoU_foreground"].mean(), group["mIoU_foreground"].std(), n),
            "mIoU (oracle group labels)": fmt(group["oracle_mIoU"].mean(), group["oracle_mIoU"].std(), n),
            "all-background floor": fmt(group["floor_mIoU"].mean(), 0.0, 1) if "floor_mIoU" in group else "-",
        })
    order = {name: i for i, name in enumerate(cfg.eval.datasets)}  # the preset's dataset order (VOC, Context, COCO)
    rows.sort(key=lambda row: order.get(row["dataset"], len(order)))
    rows = place_official_row(cfg, rows)
    rows = place_reference_rows(cfg, rows)  # the supervised reference, last in its dataset's rows
    paper = paper_numbers()["zero_shot"]
    # the paper's mIoU beside each row of a dataset it reports (real datasets; none for the synthetic world)
    if any(row["dataset"] in paper["rows"][0] for row in rows):
        for row in rows:
            row.update({f"paper: {p['model']}": p.get(row["dataset"], "-") for p in paper["rows"]})
    note = "Paper (zero-shot mIoU %, " + paper["cite"] + "): " + "; ".join(
        f"{r['model']}: VOC {r['voc']}, Context {r['context']}, COCO-Object {r['coco_object']}" for r in paper["rows"]
    )
    readout = official_readout_note(cfg, metrics)  # "" unless the main variant is also scored as published
    note += f"\n\n{readout}" if readout else ""
    note += f"\n\n{reference_note(cfg)}" if reference_note(cfg) else ""
    return Table("zero_shot", f"Zero-shot segmentation, preset `{cfg.preset}`", pd.DataFrame(rows), note)


def _paper_match(table: str, attrs: dict, rows: list[dict]) -> list[dict]:
    """The paper's rows with the same setting as a variant (its attributes from variant_attributes)."""
    if table == "assignment_x_multilabel":
        return [p for p in rows if p["assignment"] == attrs["assignment"] and p["multi_label"] == attrs["multi_label"]]
    if table == "group_tokens":  # the paper's Table 2 has 1-stage models: one number of group and output tokens
        return [p for p in rows if attrs["stages"] == 1 and str(p["group_tokens"]) == attrs["group_tokens"]
                and str(p["output_tokens"]) == attrs["output_tokens"]]
    if table == "text_encoder":  # the paper trains its text transformer from scratch and has no such table
        return []
    return [p for p in rows if p["stages"] == attrs["stages"] and p["data"] == "CC12M+YFCC"]


def ablation_table(cfg: ExperimentConfig, metrics: pd.DataFrame, table: str, dataset: str) -> Table:
    paper = paper_numbers()[table]
    stats = seed_stats(metrics)
    ref = reference(cfg, table)
    rows = []
    for variant in members(cfg, table):
        attrs = variant_attributes(cfg, variant)
        mean, std, n = _ours(stats, variant, dataset)
        row = {"variant": variant}
        if table == "assignment_x_multilabel":
            row |= {"assignment": attrs["assignment"], "multi-label loss": attrs["multi_label"]}
        elif table == "group_tokens":
            row |= {"group tokens": attrs["group_tokens"], "output tokens": attrs["output_tokens"]}
        elif table == "text_encoder":
            text = cfg.for_variant(variant).model.text
            row |= {"text encoder": text.kind + (f" ({'frozen' if text.freeze else 'fine-tuned'})"
                                                 if text.kind == "minilm" else " (from scratch)")}
        else:
            row |= {"stages": attrs["stages"], "group tokens": attrs["group_tokens"]}
        match = _paper_match(table, attrs, paper["rows"])
        row |= {"differs from the reference in": _differs(cfg, variant, ref), "ours: mIoU": fmt(mean, std, n),
                "seeds": n, "paper: VOC mIoU": match[0]["miou"] if match else "-"}
        rows.append(row)
    title = {"assignment_x_multilabel": "Table 1: hard vs soft assignment x multi-label loss",
             "group_tokens": "Table 2: number of group and output tokens",
             "stages": "Table 3: 1-stage vs 2-stage grouping",
             "text_encoder": "Text encoder: trained from scratch vs pretrained"}[table]
    note = (f"Ours: {dataset} split, preset `{cfg.preset}`; each row differs from the reference `{ref}` only in the "
            f"keys listed. Paper: {paper['cite']}.")
    no_multi_label = [v for v in members(cfg, table) if not variant_attributes(cfg, v)["multi_label"]]
    if table == "assignment_x_multilabel" and no_multi_label and cfg.eval.segment_embeds == "members":
        note += (" Only the multi-label loss trains the members-only segment embeddings that this readout names "
                 "(`eval.segment_embeds: members`); rows without it keep the same readout, so their score includes "
                 "that effect.")
    if table == "group_tokens" and len(cfg.for_variant(ref).model.image.num_output_groups) > 1:
        note += " The paper's Table 2 has 1-stage models only; this study has no 1-stage variant to compare with it."
    return Table(table, title, pd.DataFrame(rows), note)


def baselines_table(cfg: ExperimentConfig, metrics: pd.DataFrame, dataset: str) -> Table:
    """Table 4: learned grouping against non-parametric grouping of a ViT trained with the same data and loss, under
    the preset's readout and under each tighter class gate the evaluations scored."""
    paper = {r["method"]: r["miou"] for r in paper_numbers()["grouping_vs_baselines"]["rows"]}
    gates = class_gates(metrics)
    stats = seed_stats(metrics)
    gated = {k: seed_stats(metrics, f"mIoU_top{k}") for k in gates}
    methods = [(f"GroupViT ({cfg.study.main_variant})", cfg.study.main_variant, "groupvit")]
    methods += [(f"ViT + {grouper} ({variant})", f"{variant}_{grouper}", grouper) for variant in cfg.study.variants
                if cfg.variants[variant].family == "vit" for grouper in cfg.variants[variant].groupers]
    rows = []
    for method, model, key in methods:
        mean, std, n = _ours(stats, model, dataset)
        row = {"method": method, "ours: mIoU": fmt(mean, std, n), "seeds": n}
        for k in gates:
            row[f"ours: top-{k} class gate"] = fmt(*_ours(gated[k], model, dataset, f"mIoU_top{k}"))
        rows.append(row | {"paper: VOC mIoU": paper.get(key, "-")})
    note = f"Ours: {dataset} split, preset `{cfg.preset}`. Paper: {paper_numbers()['grouping_vs_baselines']['cite']}."
    if gates:
        note += (f" The top-k columns score the same groups with only each image's k best classes (by the pooled "
                 f"image embedding) allowed to name its segments; the readout itself keeps the top "
                 f"{cfg.eval.topk_classes}, as the released code keeps the top 5 (of VOC's 20 classes).")
    return Table("grouping_vs_baselines", "Table 4: GroupViT vs non-parametric grouping", pd.DataFrame(rows), note)


def per_class_table(metrics: pd.DataFrame, dataset: str) -> Table:
    sub = metrics[metrics.dataset == dataset]
    iou_cols = [c for c in sub.columns if c.startswith("IoU/") and sub[c].notna().any()]
    frame = sub.groupby("model")[iou_cols].mean().reset_index()
    frame.columns = ["model"] + [c.removeprefix("IoU/") for c in iou_cols]
    return Table("per_class_iou", f"Per-class IoU (%), {dataset} split, mean over seeds", frame)
