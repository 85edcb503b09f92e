"""The supervised reference in the zero-shot table: its rows labelled as a reference and placed last in their
dataset's block, with a note saying it is not a baseline GroupViT has to beat (family: supervised variants)."""
from __future__ import annotations

from groupvit.config import ExperimentConfig

REFERENCE_LABEL = "supervised, same budget (reference)"


def supervised_variants(cfg: ExperimentConfig) -> list[str]:
    return [v for v in cfg.study.variants if cfg.variants[v].family == "supervised"]


def place_reference_rows(cfg: ExperimentConfig, rows: list[dict]) -> list[dict]:
    """The main table's rows with each supervised model labelled REFERENCE_LABEL (plus its name when a study has
    several) and moved to the end of its dataset's rows."""
    refs = supervised_variants(cfg)
    out = [row for row in rows if row["model"] not in refs]
    for row in (r for r in rows if r["model"] in refs):
        label = REFERENCE_LABEL if len(refs) == 1 else f"{REFERENCE_LABEL}: {row['model']}"
        last = max((i for i, r in enumerate(out) if r["dataset"] == row["dataset"]), default=len(out) - 1)
        out.insert(last + 1, {**row, "model": label})
    return out


def reference_note(cfg: ExperimentConfig) -> str:
    """"" unless the study has a supervised reference."""
    refs = supervised_variants(cfg)
    if not refs:
        return ""
    augment = cfg.for_variant(refs[0]).data.augment
    return (f"*{REFERENCE_LABEL}*: the ViT baselines' image encoder with a per-token linear classifier, trained on the "
            "world's ground-truth masks with per-pixel cross-entropy for the main model's budget (`groupvit "
            f"train-supervised`; crop scale {list(augment.crop_scale)}, flips {'on' if augment.hflip else 'off'}). "
            "It shows how far zero-shot segmentation is from supervision; it is not a baseline GroupViT has to beat, "
            "and no check counts it.")
