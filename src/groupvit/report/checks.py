"""Which of the paper's claims hold in this study, computed from the numbers (the report prints these, nobody
writes them by hand).

A claim compares two models' mean mIoU over seeds and gets one of three verdicts:
- **holds**: the first leads by more than TIE_MARGIN points, each side has at least two seeds, and the lead is beyond
  both the seed spread (the larger seed standard deviation) and the images' bootstrap 95% intervals (they do not
  overlap);
- **direction only**: the first leads by more than TIE_MARGIN, but within the spread or the intervals, or a side has a
  single seed (training noise is then unmeasured);
- **does not hold**: a tie (within TIE_MARGIN) or the opposite ordering.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from groupvit.config import ExperimentConfig
from groupvit.report.collect import variant_attributes
from groupvit.report.tables import class_gates, members, reference

TIE_MARGIN = 0.5  # mIoU points: smaller gaps are ties, not orderings
HOLDS, DIRECTION, FAILS, UNTESTED = "holds", "direction only", "does not hold", "not tested"


@dataclass
class Check:
    claim: str
    paper: str
    ours: str
    verdict: str  # HOLDS, DIRECTION, FAILS or UNTESTED
    why: str = ""


@dataclass
class Score:
    """A model's mIoU over seeds: mean, seed standard deviation, seed count and the mean bootstrap 95% interval."""
    model: str
    mean: float
    std: float
    seeds: int
    low: float
    high: float

    def text(self) -> str:
        spread = f" ± {self.std:.1f}" if self.seeds > 1 else ""
        ci = f", 95% CI {self.low:.1f}-{self.high:.1f}" if not math.isnan(self.low) else ""
        return f"{self.model} {self.mean:.1f}{spread} ({self.seeds} seed{'s' if self.seeds > 1 else ''}{ci})"


def score(metrics: pd.DataFrame, model: str, dataset: str) -> Score | None:
    rows = metrics[(metrics.model == model) & (metrics.dataset == dataset)]
    if rows.empty or rows["mIoU"].isna().all():
        return None
    ci = [rows[c].mean() if c in rows else math.nan for c in ("mIoU_ci95_low", "mIoU_ci95_high")]
    std = float(rows["mIoU"].std()) if len(rows) > 1 else math.nan
    return Score(model, float(rows["mIoU"].mean()), std, len(rows), float(ci[0]), float(ci[1]))


def compare(claim: str, paper: str, metrics: pd.DataFrame, dataset: str, a: str | None, b: str | None) -> Check:
    """The claim "a beats b" (see the module docstring for the verdicts)."""
    if a is None or b is None:
        return Check(claim, paper, "the study has no such pair of variants", UNTESTED)
    sa, sb = score(metrics, a, dataset), score(metrics, b, dataset)
    if sa is None or sb is None:
        return Check(claim, paper, f"missing metrics for {a} or {b}", UNTESTED)
    ours = f"{sa.text()} vs {sb.text()}"
    lead = sa.mean - sb.mean
    if lead <= TIE_MARGIN:
        return Check(claim, paper, ours, FAILS, "a tie" if abs(lead) <= TIE_MARGIN else f"behind by {-lead:.1f}")
    if min(sa.seeds, sb.seeds) < 2:
        return Check(claim, paper, ours, DIRECTION, f"lead {lead:.1f} with a single seed on one side")
    spread = max(x for x in (sa.std, sb.std, 0.0) if not math.isnan(x))
    if lead <= spread:
        return Check(claim, paper, ours, DIRECTION, f"lead {lead:.1f} within the seed spread {spread:.1f}")
    if not (math.isnan(sa.low) or math.isnan(sb.high)) and sa.low <= sb.high:
        return Check(claim, paper, ours, DIRECTION, f"lead {lead:.1f}; the 95% intervals overlap")
    return Check(claim, paper, ours, HOLDS, f"lead {lead:.1f} beyond the seed spread {spread:.1f} and the intervals")


def emergence(metrics: pd.DataFrame, main: str, dataset: str) -> Check | None:
    """Segmentation emerges: every seed of the main model at more than twice the all-background floor and most
    object classes found (holds with at least two seeds and the 95% interval above that line)."""
    sub = metrics[(metrics.model == main) & (metrics.dataset == dataset)]
    if sub.empty or "floor_mIoU" not in sub:
        return None
    s, floor = score(metrics, main, dataset), float(sub["floor_mIoU"].mean())
    classes = [c for c in sub.columns if c.startswith("IoU/") and c != "IoU/background" and sub[c].notna().any()]
    found = sum(1 for c in classes if sub[c].mean() > 0)
    ours = f"{s.text()} vs the all-background floor {floor:.1f}; {found}/{len(classes)} object classes with IoU > 0"
    claim = "Segmentation emerges from text supervision (well above the all-background floor, most classes found)"
    paper = "52.3 mIoU on VOC, every class non-zero"
    line = 2 * floor
    if not (s.mean > line and found > len(classes) / 2):
        return Check(claim, paper, ours, FAILS, f"mean at or below twice the floor ({line:.1f}) or few classes")
    if s.seeds < 2 or not (sub["mIoU"] > line).all():
        return Check(claim, paper, ours, DIRECTION, f"above twice the floor ({line:.1f}) on average, not with every "
                     "seed or with a single seed")
    if not math.isnan(s.low) and s.low <= line:
        return Check(claim, paper, ours, DIRECTION, f"the 95% interval reaches twice the floor ({line:.1f})")
    return Check(claim, paper, ours, HOLDS, f"every seed above twice the floor ({line:.1f})")


def _find(cfg: ExperimentConfig, table: str, **wanted) -> str | None:
    for variant in members(cfg, table):
        attrs = variant_attributes(cfg, variant)
        if all(attrs[k] == v for k, v in wanted.items()):
            return variant
    return None


def reproduction_checks(cfg: ExperimentConfig, metrics: pd.DataFrame, dataset: str) -> list[Check]:
    main = cfg.study.main_variant
    checks = [c for c in [emergence(metrics, main, dataset)] if c is not None]
    table1 = "assignment_x_multilabel"  # each pair differs in one setting; the paper's Table 1 has all four cells
    for multi_label, paper in ((True, "hard 39.3 vs soft 25.1"), (False, "hard 36.7 vs soft 12.0")):
        with_ = "with" if multi_label else "without"
        checks.append(compare(f"Hard assignment beats soft assignment ({with_} multi-label)", paper, metrics, dataset,
                              _find(cfg, table1, assignment="hard", multi_label=multi_label),
                              _find(cfg, table1, assignment="soft", multi_label=multi_label)))
    for assignment, paper in (("hard", "39.3 with vs 36.7 without"), ("soft", "25.1 with vs 12.0 without")):
        checks.append(compare(f"The multi-label contrastive loss helps ({assignment} assignment)", paper, metrics,
                              dataset, _find(cfg, table1, assignment=assignment, multi_label=True),
                              _find(cfg, table1, assignment=assignment, multi_label=False)))
    checks.append(compare("2-stage grouping beats 1-stage", "52.3 vs 37.2 (CC12M+YFCC), 41.1 vs 39.3 (CC12M)",
                          metrics, dataset, _find(cfg, "stages", stages=2), _find(cfg, "stages", stages=1)))
    # Table 2, on 1-stage models: more output segments from the same group tokens, and more group tokens for the
    # same segments (the reference's counts against each other variant's, read from the configs)
    ref = reference(cfg, "group_tokens")
    tokens, outputs = (variant_attributes(cfg, ref)[k] for k in ("group_tokens", "output_tokens"))
    for variant in members(cfg, "group_tokens"):
        attrs = variant_attributes(cfg, variant)
        if attrs["group_tokens"] == tokens and attrs["output_tokens"] != outputs:
            more, fewer = sorted((ref, variant), key=lambda v: int(variant_attributes(cfg, v)["output_tokens"]))[::-1]
            checks.append(compare("More output segments help (1-stage, same group tokens)", "16/8 37.1 vs 16/4 28.6",
                                  metrics, dataset, more, fewer))
        elif attrs["output_tokens"] == outputs and attrs["group_tokens"] != tokens:
            more, fewer = sorted((ref, variant), key=lambda v: int(variant_attributes(cfg, v)["group_tokens"]))[::-1]
            checks.append(compare("More group tokens help (1-stage, same output segments)",
                                  "64/8 39.3, 32/8 38.3 vs 16/8 37.1", metrics, dataset, more, fewer))
    baselines = [f"{v}_{g}" for v in cfg.study.variants if cfg.variants[v].family == "vit"
                 for g in cfg.variants[v].groupers]
    checks.append(compare("GroupViT beats every non-parametric grouping of a ViT (vs the best one)",
                          "52.3 vs at most 25.0 (K-means)", metrics, dataset, main, _best(metrics, baselines, dataset)))
    for k in class_gates(metrics):  # the same claim with only each image's top-k classes naming its segments
        # (the gated scores have no bootstrap intervals)
        gated = metrics.assign(mIoU=metrics[f"mIoU_top{k}"], mIoU_ci95_low=math.nan, mIoU_ci95_high=math.nan)
        if score(gated, main, dataset) is not None:
            checks.append(compare(f"... with only each image's top-{k} class{'es' * (k > 1)} naming its segments",
                                  "not reported (the released code keeps the top 5 of VOC's 20 classes)", gated,
                                  dataset, main, _best(gated, baselines, dataset)))
    return checks


def _best(metrics: pd.DataFrame, models: list[str], dataset: str) -> str | None:
    scored = [s for s in (score(metrics, m, dataset) for m in models) if s is not None]
    return max(scored, key=lambda s: s.mean).model if scored else None


def checks_markdown(checks: list[Check]) -> str:
    """The checks as a markdown table (no heading: the report gives the section its own)."""
    lines = ["| claim | verdict | why | ours (mIoU %) | paper (VOC mIoU %) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c.claim} | **{c.verdict}** | {c.why} | {c.ours} | {c.paper} |" for c in checks]
    legend = (f"Verdicts: **{HOLDS}**: beyond the seed spread and the bootstrap 95% intervals, with at least two "
              f"seeds a side; **{DIRECTION}**: the paper's ordering, but within the spread or intervals, or with a "
              f"single seed; **{FAILS}**: a tie (within {TIE_MARGIN} points) or the opposite ordering.")
    return "\n".join(lines) + "\n\n" + legend + "\n"


def checks_records(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
