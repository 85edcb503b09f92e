"""Which of the paper's claims hold in this study, computed from the numbers (the report prints these, nobody
writes them by hand). A claim compares two mean mIoUs: it holds when the first leads by more than TIE_MARGIN points,
and is called clear only when, with several seeds, the lead also exceeds the larger seed standard deviation."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from groupvit.config import ExperimentConfig
from groupvit.report.collect import variant_attributes
from groupvit.report.tables import members, seed_stats


TIE_MARGIN = 0.5  # mIoU points: smaller gaps are ties, not orderings


@dataclass
class Check:
    claim: str
    paper: str
    ours: str
    holds: bool | None  # None: the study lacks the variants to test it
    clear: bool = False

    def line(self) -> str:
        verdict = {True: "holds" + (" (clearly)" if self.clear else " (within seed noise or single seed)"),
                   False: "does NOT hold", None: "not tested"}[self.holds]
        return f"- **{self.claim}**: {verdict}. Ours: {self.ours}. Paper: {self.paper}."


def _value(stats: pd.DataFrame, model: str, dataset: str) -> tuple[float, float, int]:
    row = stats[(stats.model == model) & (stats.dataset == dataset)]
    if row.empty:
        return math.nan, math.nan, 0
    r = row.iloc[0]
    return float(r["mIoU_mean"]), float(r["mIoU_std"]), int(r["seeds"])


def _compare(claim: str, paper: str, stats: pd.DataFrame, dataset: str, a: str | None, b: str | None) -> Check:
    if a is None or b is None:
        return Check(claim, paper, "the study has no such pair of variants", None)
    (ma, sa, na), (mb, sb, nb) = _value(stats, a, dataset), _value(stats, b, dataset)
    if math.isnan(ma) or math.isnan(mb):
        return Check(claim, paper, f"missing metrics for {a} or {b}", None)
    spread = max(x for x in (sa, sb, 0.0) if not math.isnan(x))
    lead = ma - mb
    clear = min(na, nb) > 1 and lead > max(spread, TIE_MARGIN)
    tie = " (a tie)" if abs(lead) <= TIE_MARGIN else ""
    return Check(claim, paper, f"{a} {ma:.1f} vs {b} {mb:.1f} mIoU{tie}", lead > TIE_MARGIN, clear)


def _find(cfg: ExperimentConfig, table: str, **wanted) -> str | None:
    for variant in members(cfg, table):
        attrs = variant_attributes(cfg, variant)
        if all(attrs[k] == v for k, v in wanted.items()):
            return variant
    return None


def reproduction_checks(cfg: ExperimentConfig, metrics: pd.DataFrame, dataset: str) -> list[Check]:
    stats = seed_stats(metrics)
    main = cfg.study.main_variant
    checks = []

    sub = metrics[(metrics.model == main) & (metrics.dataset == dataset)]
    if not sub.empty and "floor_mIoU" in sub:
        m, floor = sub["mIoU"].mean(), sub["floor_mIoU"].mean()
        iou_cols = [c for c in sub.columns if c.startswith("IoU/") and c != "IoU/background"]
        nonzero = sum(1 for c in iou_cols if sub[c].mean() > 0)
        checks.append(Check(
            "Segmentation emerges from text supervision (main model well above the all-background floor, "
            "most object classes found)",
            "52.3 mIoU on VOC, every class non-zero",
            f"{main} {m:.1f} mIoU vs floor {floor:.1f}; {nonzero}/{len(iou_cols)} object classes with IoU > 0",
            bool(m > 2 * floor and nonzero > len(iou_cols) / 2), clear=bool(m > 3 * floor),
        ))
    checks.append(_compare("Hard assignment beats soft assignment", "hard 39.3 vs soft 25.1 (with multi-label)",
                           stats, dataset, _find(cfg, "assignment_x_multilabel", assignment="hard", multi_label=True),
                           _find(cfg, "assignment_x_multilabel", assignment="soft", multi_label=True)))
    checks.append(_compare("The multi-label contrastive loss helps", "39.3 with vs 36.7 without (hard)",
                           stats, dataset, _find(cfg, "assignment_x_multilabel", assignment="hard", multi_label=True),
                           _find(cfg, "assignment_x_multilabel", assignment="hard", multi_label=False)))
    checks.append(_compare("2-stage grouping beats 1-stage", "52.3 vs 37.2 (CC12M+YFCC), 41.1 vs 39.3 (CC12M)",
                           stats, dataset, _find(cfg, "stages", stages=2), _find(cfg, "stages", stages=1)))
    baselines = [f"{v}_{g}" for v in cfg.study.variants if cfg.variants[v].family == "vit"
                 for g in cfg.variants[v].groupers]
    scored = [(b, _value(stats, b, dataset)[0]) for b in baselines]
    scored = [(b, m) for b, m in scored if not math.isnan(m)]
    best = max(scored, key=lambda t: t[1])[0] if scored else None
    checks.append(_compare("GroupViT beats every non-parametric grouping of a ViT (vs the best one)",
                           "52.3 vs at most 25.0 (K-means)", stats, dataset, main, best))
    return checks


def checks_markdown(checks: list[Check]) -> str:
    return "### What reproduced and what did not\n\n" + "\n".join(c.line() for c in checks) + "\n"


def checks_records(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
