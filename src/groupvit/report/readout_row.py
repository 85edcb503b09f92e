"""The zero-shot table's row of the main variant read out as published (groupvit.evaluation.readout): placed right
under the main model, with a note on what differs and why it scores as it does, from the measured readout_stats."""
from __future__ import annotations

import math

import pandas as pd

from groupvit.config import ExperimentConfig
from groupvit.evaluation.readout import MIN_SHARE, OFFICIAL_READOUT, official_readout_model

LABEL = "{main}, official soft readout"


def place_official_row(cfg: ExperimentConfig, rows: list[dict]) -> list[dict]:
    """`rows` (dicts with `model` and `dataset`) with each official-readout row moved right under the main model's
    row of the same dataset and labelled LABEL; unchanged when the study has no such model."""
    official, main = official_readout_model(cfg), cfg.study.main_variant
    if official is None:
        return rows
    extra = {row["dataset"]: {**row, "model": LABEL.format(main=main)} for row in rows if row["model"] == official}
    placed = []
    for row in rows:
        if row["model"] == official:
            continue
        placed.append(row)
        if row["model"] == main and row["dataset"] in extra:
            placed.append(extra.pop(row["dataset"]))
    return placed + list(extra.values())  # a dataset without the main model's row keeps its official row last


def official_readout_note(cfg: ExperimentConfig, metrics: pd.DataFrame) -> str:
    """What the official-readout row changes and, measured on the main dataset, how many groups each readout's
    final-stage maps use per image; "" when the study has no such row or its metrics carry no readout_stats."""
    official, main = official_readout_model(cfg), cfg.study.main_variant
    if official is None:
        return ""
    ev = cfg.for_variant(main).eval
    ours = ", ".join(f"`eval.{key}: {getattr(ev, key)}`" for key in OFFICIAL_READOUT)
    paper = ", ".join(f"`eval.{key}: {value}`" for key, value in OFFICIAL_READOUT.items())
    note = (f"`{LABEL.format(main=main)}` (`{official}`) reads the same checkpoints of `{main}` out as published "
            f"({paper}) instead of with this preset's readout ({ours}); the background prompts and `bg_thresh` stay "
            "the preset's, so only the pixel-to-group maps and the segment embeddings differ.")
    sub = metrics[(metrics.model == official) & (metrics.dataset == cfg.eval.datasets[0])]
    columns = ["final_groups", "final_groups_used_soft", "final_groups_used_hard", "final_soft_max_prob"]
    if sub.empty or not set(columns) <= set(sub.columns) or sub[columns].isna().any().any():
        return note
    groups, soft, hard, peak = (float(sub[c].mean()) for c in columns)
    note += (f" Why it scores as it does, on {cfg.eval.datasets[0]}: in its final-stage soft maps a pixel's largest "
             f"assignment probability is {peak:.3f} on average (uniform over the {groups:.0f} groups: "
             f"{1 / groups:.3f}), so their arg-max gives {soft:.1f} group(s) per image at least {MIN_SHARE:.0%} of "
             f"the pixels, against {hard:.1f} for the hard maps")
    return note + (": most of an image becomes one segment named by one class." if soft < hard and
                   not math.isclose(soft, hard) else ".")
