"""The report's figures: each function takes the study's tables (DataFrames) and returns a matplotlib Figure, so the
notebook only loads, calls and shows. The qualitative grids live with the evaluation (groupvit.evaluation.figures)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are saved and embedded as PNG, never shown in a window
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

LOSS_TERMS = ("loss", "contrastive", "multi_label")  # the training losses, in the order they are drawn


def miou_bars(metrics: pd.DataFrame, dataset: str) -> Figure:
    """mIoU, objects-only mIoU and oracle mIoU per model (bars: mean over seeds, error bars: seed standard
    deviation), with the all-background floor as a dashed line. A supervised model is marked as a reference."""
    metrics = metrics.assign(model=[f"{m} (supervised reference)" if g == "supervised" else m
                                    for m, g in zip(metrics["model"], metrics["grouper"])])
    sub = metrics[metrics.dataset == dataset].melt(
        id_vars=["model", "seed"], value_vars=["mIoU", "mIoU_foreground", "oracle_mIoU"], var_name="score",
        value_name="percent")
    order = sub[sub.score == "mIoU"].groupby("model")["percent"].mean().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(order) + 2))
    sns.barplot(data=sub, y="model", x="percent", hue="score", order=order, errorbar="sd", ax=ax)
    floor = metrics.loc[metrics.dataset == dataset, "floor_mIoU"].mean()
    ax.axvline(floor, color="k", ls="--", lw=1, label=f"all-background floor ({floor:.1f})")
    ax.set_xlabel(f"{dataset} mIoU (%)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def per_class_heatmap(per_class: pd.DataFrame) -> Figure:
    """IoU (%) of every class (columns) for every model (rows, the index)."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * per_class.shape[1], 0.5 * per_class.shape[0] + 1.5))
    sns.heatmap(per_class, annot=True, fmt=".0f", cmap="viridis", vmin=0, vmax=100, ax=ax,
                cbar_kws={"label": "IoU (%)"})
    ax.set_ylabel("")
    return fig


def validation_columns(curves: pd.DataFrame) -> list[str]:
    """The columns of the training curves that hold a validation mIoU (none unless the runs logged one)."""
    return [c for c in curves.columns if "miou" in c.lower()]


def learning_curves(curves: pd.DataFrame) -> Figure | None:
    """One panel per logged training loss and per validation mIoU column, one line per run (variant, seed), over
    training steps. None when the curves are empty."""
    panels = [c for c in LOSS_TERMS if c in curves] + validation_columns(curves)
    if curves.empty or not panels:
        return None
    runs = curves.assign(run=curves["variant"] + " s" + curves["seed"].astype(str))
    # one colour per run in every panel, and one legend for all runs (some runs log only some terms)
    names = sorted(runs["run"].unique())
    palette = dict(zip(names, sns.color_palette("husl", len(names))))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, column in zip(axes[0], panels):
        data = runs.dropna(subset=[column])
        sns.lineplot(data=data, x="step", y=column, hue="run", palette=palette, ax=ax, legend=False, marker=".")
        ax.set_title(column)
        ax.set_ylabel("")
        ax.set_xlabel("training step")
    handles = [plt.Line2D([], [], color=palette[name], marker=".") for name in names]
    axes[0][-1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="run", fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["LOSS_TERMS", "learning_curves", "miou_bars", "per_class_heatmap", "validation_columns"]
