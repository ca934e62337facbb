"""The ratio study: every MLflow run's test metrics against `ratio`, per model and test set.

A condition is (model, test set, metric, synthetic class mix, real fraction); within it:

- level at each ratio: mean over the replicates (seed, data_seed) with a 95 % t-interval computed
  on the logit scale of the metric's range and mapped back, so it stays inside [0, 1] ([0, 0.2]
  for pauc80). With fewer than 3 replicates no interval is shown: two points give a t-interval
  of +-12.7 standard deviations, which says nothing.
- effect of each ratio > 0 against ratio 0: mean paired difference (pairs share seed and
  data_seed, so split, generator and initialisation noise cancel), its 95 % t-interval (3+
  pairs), Cohen's d_z, the paired t-test p-value and its Holm adjustment over every test the
  report makes (the family: ratios x metrics x test sets x models x conditions).

Runs from before `synthetic_class_mix` existed drew the synthetic part 50/50 and are labelled
`balanced`; runs from before the filter stage are labelled filter `none 1` (every synthetic image).
Filter settings are part of the condition, so filtered and unfiltered runs compare at the same ratio.
The AUROC gap between the best and the worst patient group of each attribute (`auc_gap_<attribute>`)
is tracked against ratio like any metric: do synthetic images narrow it or widen it? Writes reports/ratio_sweep.{md,csv,png}, the per-run values it was computed from
(reports/ratio_sweep_runs.csv) and reports/ratio_grid.{md,png}.

A report folder holds one study. `check_replaces` refuses to overwrite one whose runs the new report
does not cover (a fresh clone's two-run store would otherwise replace the committed 60-run study);
`screen_runs` and `tidy_runs` say why every run left out was left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.stats.multitest import multipletests  # noqa: E402

from dermsynth.arms import CONTROL, SYNTHETIC, detectable_effect, synthetic_efficiency  # noqa: E402
from dermsynth.classify.metrics import METRICS  # noqa: E402
from dermsynth.errors import UserError, UserValueError  # noqa: E402
from dermsynth.plotting import save_figure  # noqa: E402
from dermsynth.testset_names import in_order, testset_name, testsets  # noqa: E402
from dermsynth.runs import GAP_METRICS, TESTSETS, Skipped, param, run_name  # noqa: E402
from dermsynth.runs import screen_runs  # noqa: E402,F401  (dermsynth report's own entry point)

CONDITION = ["model", "testset", "metric", "synthetic_class_mix", "pool", "real_fraction", "filter"]
REPLICATE = ["seed", "data_seed"]
# one run's place in a study: its condition (less the per-row test set and metric), ratio and replicate
CELL = ["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix", "filter", "pool"]
MIN_REPLICATES_FOR_INTERVAL = 3
GRID_METRICS = ("auc", "balanced_accuracy")
# class mixes whose synthetic part differs in class mix from the real part: origin then predicts the class
CONFOUNDED = {"balanced": " (synthetic part 50/50: class mix confounded with origin)",
              "minority": " (synthetic images of the minority class only: class confounded with origin)"}


def metric_range(metric: str) -> tuple[float, float]:
    return (0.0, 0.2) if metric == "pauc80" else (0.0, 1.0)


def _rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, test set, metric) from mlflow.search_runs output, in the runs' order."""
    rows = []
    sets = testsets(runs.columns, "metrics.")  # ISIC, HAM10000, then any external test set
    for _, r in runs.iterrows():
        for ts in sets:
            for m in METRICS + GAP_METRICS:
                v = r.get(f"metrics.{ts}_{m}")
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                ratio = float(r["params.ratio"])
                rows.append({"model": r["params.model"], "ratio": ratio, "seed": int(r["params.seed"]),
                             "data_seed": str(param(r, "data_seed", "?")),
                             "real_fraction": float(param(r, "real_fraction", 1.0)),
                             "synthetic_class_mix": str(param(r, "synthetic_class_mix", "balanced")),
                             "filter": f"{param(r, 'filter_policy', 'none')} {float(param(r, 'keep_fraction', 1.0)):g}",
                             # ratio 0 fills no slot: the same training set in both arms, one shared baseline
                             "pool": str(param(r, "pool", SYNTHETIC)) if ratio > 0 else SYNTHETIC,
                             "testset": ts, "metric": m, "value": float(v), "run_id": r["run_id"]})
    return pd.DataFrame(rows, columns=["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix",
                                       "filter", "pool", "testset", "metric", "value", "run_id"])


def tidy_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[Skipped]]:
    """`tidy`, and the runs it dropped because a newer run of the same cell replaced them."""
    every = _rows(runs)
    # a re-run of the same (condition, ratio, replicate) supersedes the older one (runs come newest first)
    df = every.drop_duplicates(CONDITION + ["ratio"] + REPLICATE, keep="first")
    kept = set(df.run_id)
    names = dict(zip(runs["run_id"], (run_name(r) for _, r in runs.iterrows()))) if len(runs) else {}
    newest = every[every.run_id.isin(kept)].drop_duplicates(CELL).set_index(CELL).run_id
    skipped = []
    for run_id, g in every[~every.run_id.isin(kept)].groupby("run_id", sort=False):
        by = newest.get(tuple(g[CELL].iloc[0]))
        other = f" {names.get(by) or '(unnamed)'} ({str(by)[:8]})" if by is not None else ""
        skipped.append(Skipped(str(run_id), names.get(run_id, ""),
                               f"superseded by the newer run{other} of the same model, ratio, seeds and condition"))
    return df, skipped


def tidy(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, test set, metric) from mlflow.search_runs output (newest runs first)."""
    return tidy_runs(runs)[0]


def bounded_interval(values: np.ndarray, lo: float, hi: float, level: float = 0.95) -> tuple[float, float]:
    """t-interval of the mean on the logit scale of [lo, hi], mapped back (inside the range by construction)."""
    n = len(values)
    if n < MIN_REPLICATES_FOR_INTERVAL:
        return float("nan"), float("nan")
    eps = 1e-3 * (hi - lo)  # metrics at the bounds (0 or 1) have no logit: nudge them inside
    z = (np.clip(values, lo + eps, hi - eps) - lo) / (hi - lo)
    logit = np.log(z / (1 - z))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * logit.std(ddof=1) / math.sqrt(n)
    back = lambda x: lo + (hi - lo) / (1 + math.exp(-x))  # noqa: E731
    return back(logit.mean() - half), back(logit.mean() + half)


def paired_effect(diff: np.ndarray, span: float, level: float = 0.95) -> dict:
    """Mean paired difference, its t-interval (3+ pairs, clipped to +-span), d_z and the t-test p."""
    n, nan = len(diff), float("nan")
    out = {"pairs": n, "delta": float(diff.mean()) if n else nan, "delta_low": nan, "delta_high": nan, "d_z": nan,
           "p": nan}
    if n < 2:
        return out
    sd = diff.std(ddof=1)
    if sd > 0:
        out["d_z"] = float(diff.mean() / sd)
        out["p"] = float(stats.ttest_1samp(diff, 0.0).pvalue)
    if n >= MIN_REPLICATES_FOR_INTERVAL:
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        out["delta_low"], out["delta_high"] = max(out["delta"] - half, -span), min(out["delta"] + half, span)
    return out


def _with_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Per-run tables exported before the filter stage (every synthetic image) or the control arm."""
    if "filter" not in df.columns:
        df = df.assign(filter="none 1")
    return df if "pool" in df.columns else df.assign(pool=SYNTHETIC)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    df = _with_defaults(df)
    pool_at = CONDITION.index("pool")
    baselines = {key: g for key, g in df[df.ratio == 0.0].groupby(CONDITION)}
    out = []
    for key, cond in df.groupby(CONDITION):
        lo, hi = metric_range(key[2])
        # the control arm's ratio-0 runs are the synthetic arm's (no slot is filled at ratio 0)
        base = baselines.get(key[:pool_at] + (SYNTHETIC,) + key[pool_at + 1:], cond.iloc[:0])
        for ratio, g in cond.groupby("ratio"):
            ci = bounded_interval(g.value.to_numpy(), lo, hi)
            row = dict(zip(CONDITION, key)) | {"ratio": ratio, "replicates": len(g), "mean": g.value.mean(),
                                                 "ci95_low": ci[0], "ci95_high": ci[1]}
            if ratio != 0.0:
                paired = g.merge(base, on=REPLICATE, suffixes=("", "_0"))
                diff = (paired.value - paired.value_0).to_numpy()
                eff = paired_effect(diff, hi - lo)
                # the smallest effect these pairs could have shown (80 % power, alpha 0.05 before Holm)
                eff["mde80"] = detectable_effect(float(diff.std(ddof=1)), len(diff)) if len(diff) > 1 else np.nan
            else:
                eff = paired_effect(np.zeros(0), hi - lo) | {"mde80": np.nan}
            out.append(row | {f"effect_{k}" if k in ("pairs",) else k: v for k, v in eff.items()})
    s = pd.DataFrame(out)
    s["p_holm"] = np.nan
    tested = s.p.notna()
    if tested.any():  # Holm over the whole family this report tests
        s.loc[tested, "p_holm"] = multipletests(s.loc[tested, "p"], method="holm")[1]
    return s


def _varied(df: pd.DataFrame) -> list[str]:
    seeds, data_seeds = sorted(df.seed.unique()), sorted(df.data_seed.unique())
    lines = [f"- classifier seeds varied: {', '.join(map(str, seeds))} (initialisation, mixing, augmentation, bootstrap)"]
    if len(data_seeds) > 1:
        lines.append(f"- data seeds varied: {', '.join(data_seeds)} (split, diffusion, LoRA, generation): intervals "
                     "include split and generator variance")
    else:
        lines.append(f"- data_seed fixed at {data_seeds[0]}: intervals cover the classifier side only, not the split or "
                     "the generator (vary it with `-S data_seed=...`)")
    return lines


def _zero_width(low: float, high: float) -> bool:
    """An interval that prints as one number: identical replicates, not certainty."""
    return not math.isnan(low) and f"{low:.3f}" == f"{high:.3f}"


def _fmt_level(r: pd.Series) -> str:
    cell = f"{r['mean']:.3f}"
    if _zero_width(r.ci95_low, r.ci95_high):
        return cell + f" ({int(r.replicates)} identical replicates)"
    return cell + (f" [{r.ci95_low:.3f}, {r.ci95_high:.3f}]" if not math.isnan(r.ci95_low) else "")


def _fmt_mde(r) -> str:
    """The detectable effect, or that none inside the metric's range is (a t-test of 3 noisy pairs)."""
    lo, hi = metric_range(r.metric)
    if math.isnan(r.mde80):
        return ""
    return f"+-{r.mde80:.3f}" if r.mde80 <= hi - lo else f"none (> {hi - lo:g})"


def _efficiency_lines(df: pd.DataFrame) -> list[str]:
    """The control arm's section: how much of the gain of new real images the synthetic ones give."""
    e = synthetic_efficiency(df)
    if e.empty:
        return []
    lines = ["## Synthetic efficiency against held-out real images", "",
             "Both arms at the same ratio, class mix and counts: the synthetic arm's images come from the generator, "
             "the control arm's from real training groups the classifier would not otherwise see (what a perfect "
             "generator would give). Efficiency = synthetic effect / control effect against ratio 0 on the same "
             "replicates [95 % bootstrap interval]: 1 = as good as new real images, 0 = no gain.", "",
             "| model | test set | metric | ratio | real fraction | pairs | synthetic effect | control effect | "
             "efficiency |", "|---|---|---|---|---|---|---|---|---|"]
    for r in e.itertuples(index=False):
        eff = "" if math.isnan(r.efficiency) else f"{r.efficiency:.2f}"
        if not math.isnan(r.efficiency_low):
            eff += f" [{r.efficiency_low:.2f}, {r.efficiency_high:.2f}]"
        if not r.control_sees_an_effect:
            eff += " (the control arm shows no effect: this study cannot see at this size)"
        lines.append(f"| {r.model} | {testset_name(r.testset)} | {r.metric} | {r.ratio:g} | {r.real_fraction:g} | "
                     f"{r.pairs} | {r.effect_synthetic:+.3f} | {r.effect_control:+.3f} | {eff} |")
    return lines + [""]


def _fmt_effect(r: pd.Series) -> str:
    if math.isnan(r.delta):
        return ""
    cell = f"{r.delta:+.3f}"
    if _zero_width(r.delta_low, r.delta_high):
        cell += " (the same in every replicate)"
    elif not math.isnan(r.delta_low):
        cell += f" [{r.delta_low:+.3f}, {r.delta_high:+.3f}]"
    if not math.isnan(r.p):
        cell += f" p={r.p:.2g}, Holm {r.p_holm:.2g}"
    return cell


def markdown(df: pd.DataFrame, s: pd.DataFrame) -> str:
    reps = int(s.replicates.max()) if len(s) else 0
    lines = ["# Ratio study", "",
             f"{df.run_id.nunique()} MLflow runs; ratio = fraction of synthetic training images. Replicates are "
             "(seed, data_seed) pairs:", *_varied(df), "",
             "Levels: mean over replicates [95 % t-interval on the logit scale, inside the metric's range]. Effects: "
             "paired difference to ratio 0 on the same replicates [95 % t-interval], paired t-test p and its Holm "
             f"adjustment over all {int(s.p.notna().sum())} tests of this report."]
    if reps < MIN_REPLICATES_FOR_INTERVAL:
        lines += ["", f"**No intervals**: at most {reps} replicate(s) per cell; a t-interval needs at least "
                  f"{MIN_REPLICATES_FOR_INTERVAL} to mean anything (with 2 it spans +-12.7 standard deviations)."]
    lines.append("")
    lines += _efficiency_lines(_with_defaults(df))
    for (model, ts, mix, pool, frac, filt), g in s.groupby(["model", "testset", "synthetic_class_mix", "pool",
                                                           "real_fraction", "filter"]):
        title = f"## {model} on {ts}" + CONFOUNDED.get(mix, "") + (
            " (control arm: held-out real images in the synthetic slots)" if pool == CONTROL else "")
        lines += [title + (f", real_fraction {frac:g}" if frac != 1.0 else "") + f", filter {filt}", "",
                  "| ratio | replicates | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        by = {(r.ratio, r.metric): r for r in g.itertuples(index=False)}
        ratios = sorted(g.ratio.unique())
        for ratio in ratios:
            cells = [_fmt_level(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in METRICS]
            lines.append(f"| {ratio:g} | {int(g[g.ratio == ratio].replicates.max())} | " + " | ".join(cells) + " |")
        effects = [r for r in ratios if r > 0 and g[g.ratio == r].delta.notna().any()]
        if effects:
            lines += ["", "Effect against ratio 0:", "", "| ratio | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
            for ratio in effects:
                cells = [_fmt_effect(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in METRICS]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
            lines += ["", "Smallest effect these pairs detect (80 % power, paired t-test, alpha 0.05 before Holm): an "
                      "effect reported as none may still be as large as this.", "",
                      "| ratio | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
            for ratio in effects:
                cells = [_fmt_mde(by[(ratio, m)]) if (ratio, m) in by else "" for m in METRICS]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
        gaps = [m for m in GAP_METRICS if (g.metric == m).any()]
        if gaps:
            lines += ["", "AUROC gap between the best and the worst patient group (smaller is fairer; "
                      "`reports/subgroup_gap.png`):", "", "| ratio | " + " | ".join(gaps) + " |", "|---|" + "---|" * len(gaps)]
            for ratio in ratios:
                cells = [_fmt_level(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in gaps]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


# What a reader calls each metric, test set and filter setting (the CSV codes stay as they are)
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                 "sensitivity": "sensitivity (malignant found)", "specificity": "specificity (benign cleared)",
                 "f1": "F1 of malignant", "auc": "AUROC", "pauc80": "pAUC above 80 % sensitivity (at most 0.2)"}
FILTER_SCORES = {"realism": "realism", "label": "label probability", "combined": "realism and label probability"}
LINE = ["model", "synthetic_class_mix", "real_fraction", "filter", "pool"]  # one line of the sweep figure per value
HEADLINE_METRIC = "auc"
DODGE = 0.012  # ratio units between the lines' points at one ratio, so their intervals sit side by side


def metric_title(metric: str) -> str:
    if metric in GAP_METRICS:
        return f"AUROC gap between {metric[len('auc_gap_'):].replace('_', ' ')} groups (smaller is fairer)"
    return METRIC_TITLES.get(metric, metric)


def filter_title(filt: str) -> str:
    """`combined 1` -> words: which synthetic images the classifiers could draw."""
    policy, _, keep = filt.partition(" ")
    keep_fraction = float(keep) if keep else 1.0
    if policy == "none":
        return "every synthetic image (no filter)"
    if policy == "flagged" or keep_fraction >= 1.0:  # keep_fraction 1: the policies drop only the flagged ones
        return "synthetic near-copies and blanks dropped"
    return f"near-copies dropped, best {keep_fraction:.0%} kept by {FILTER_SCORES.get(policy, policy)}"


POOL_TITLE = "synthetic images"
MIX_TITLES = {"balanced": "synthetic classes 50/50", "minority": "synthetic images of the minority class only"}


def _part_titles(model: str, mix: str, frac: float, filt: str, pool: str = SYNTHETIC) -> tuple[str, ...]:
    return (model, MIX_TITLES.get(mix, "synthetic class mix as in the real set"),
            "all real training images" if frac == 1.0 else f"{frac:.0%} of the real training images",
            filter_title(filt),
            "held-out real images in the synthetic slots (control)" if pool == CONTROL else POOL_TITLE)


def line_labels(s: pd.DataFrame) -> tuple[dict[tuple, str], str]:
    """A readable label per line (model, class mix, real fraction, filter): only the parts that differ
    between the lines; the parts every line shares come back as one sentence, for a subtitle."""
    keys = sorted({tuple(k) for k in s[LINE].drop_duplicates().itertuples(index=False)}, key=str)
    parts = {k: _part_titles(*k) for k in keys}
    varies = [len({p[i] for p in parts.values()}) > 1 for i in range(len(LINE))]
    if not any(varies):
        varies[0] = True  # a single line is still named by its model
    labels = {k: ", ".join(p[i] for i in range(len(LINE)) if varies[i]) for k, p in parts.items()}
    # every line of synthetic images (no control arm): nothing to say about the pool
    shared = [p for i, p in enumerate(parts[keys[0]]) if not varies[i] and not (LINE[i] == "pool" and p == POOL_TITLE)
              ] if keys else []
    return labels, ("every line: " + "; ".join(shared)) if shared else ""


def best_effects(s: pd.DataFrame, metric: str = HEADLINE_METRIC) -> pd.DataFrame:
    """Per (test set, line): the ratio > 0 whose mean paired effect on `metric` against ratio 0 is largest
    (smallest for the gap metrics), with its interval and Holm p; chosen after the fact, so optimistic."""
    eff = s[(s.metric == metric) & (s.ratio > 0) & s.delta.notna()]
    if eff.empty:
        return eff
    lower_is_better = metric in GAP_METRICS
    best = eff.sort_values("delta", ascending=lower_is_better).groupby(["testset", *LINE], sort=False).head(1)
    return best.sort_values(["testset", *LINE])


HEADLINE_MARKERS = {"isic": "o", "ham10000": "s"}


def _headline_text(r) -> str:
    ci = f" [{r.delta_low:+.3f}, {r.delta_high:+.3f}]" if not math.isnan(r.delta_low) else " (no interval: < 3 pairs)"
    p = f", Holm p {r.p_holm:.2g}" if not math.isnan(r.p_holm) else ""
    return f"{testset_name(r.testset)}: ratio {r.ratio:g}, {r.delta:+.3f}{ci}{p}"


def _draw_headline(ax, notes, best: pd.DataFrame, labels: dict, colours: dict, keys: list, metric: str) -> None:
    """A forest plot: one row per line, one point per test set (marker) with its interval; `notes`, an axes
    beside it, holds each point's numbers at the same height."""
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    notes.axis("off")
    notes.set_ylim(len(keys) - 0.5, -0.5)
    if best.empty:
        ax.text(0.5, 0.5, "no effect to show: no ratio-0 runs to pair with, or ratio 0 only", ha="center",
                va="center", transform=ax.transAxes, fontsize=8, color="grey")
    sets = in_order(best.testset)
    # one row per line, its test sets side by side within the row (ISIC above, as in the grid's columns)
    offsets = dict(zip(sets, np.linspace(-0.18, 0.18, len(sets)) if len(sets) > 1 else [0.0]))
    for r in best.itertuples(index=False):
        key = tuple(getattr(r, c) for c in LINE)
        y = keys.index(key) + offsets[r.testset]
        if not math.isnan(r.delta_low):  # symmetric about delta unless clipped to the metric's span: bound to bound
            ax.hlines(y, r.delta_low, r.delta_high, color=colours[key], lw=1.5)
        ax.plot(r.delta, y, HEADLINE_MARKERS.get(r.testset, "D"), color=colours[key], ms=6)
        notes.plot(0.01, y, HEADLINE_MARKERS.get(r.testset, "D"), color=colours[key], ms=5)
        notes.text(0.04, y, _headline_text(r), va="center", fontsize=7)
    notes.set_xlim(0, 1)
    ax.set(yticks=range(len(keys)), yticklabels=[labels[k] for k in keys], ylim=(len(keys) - 0.5, -0.5),
           xlabel=f"{metric_title(metric)} difference to ratio 0 (paired on seeds; 95 % interval)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"Headline: the best ratio's {metric_title(metric)} change against real only "
                 "(circle ISIC, square HAM10000)\nbest = the largest mean gain, picked after the fact: read its "
                 "interval and Holm-adjusted p", fontsize=9)


def _draw_metric(ax, cell: pd.DataFrame, metric: str, ts: str, keys: list, colours: dict) -> None:
    if cell.empty and metric in GAP_METRICS:  # an empty panel would read as a plotting bug
        ax.text(0.5, 0.5, "no gap: fewer than two groups with\n5 images of each class in this test set",
                ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
    for k, key in enumerate(keys):
        g = cell[(cell[LINE] == pd.Series(key, index=LINE)).all(axis=1)].sort_values("ratio")
        if g.empty:
            continue
        x = g.ratio + (k - (len(keys) - 1) / 2) * DODGE
        ax.plot(x, g["mean"], marker="o", ms=3.5, lw=1.2, color=colours[key])
        has = g.ci95_low.notna()
        if has.any():  # thin bars, offset per line: bands of several lines would cover each other. Drawn from
            # bound to bound, not as +- errors: the interval is the logit-scale mean's, the mean may lie outside it
            ax.vlines(x[has], g.ci95_low[has], g.ci95_high[has], color=colours[key], lw=0.8, alpha=0.8)
    ax.set(title=f"{testset_name(ts)}: {metric_title(metric)}", ylim=metric_range(metric),
           xlim=(-0.05, 1.05))
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.25, lw=0.5)


def sweep_figure(s: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> plt.Figure:
    """Each metric against ratio per test set, one line per condition, one legend for the whole figure; above
    them, when `metrics` holds AUROC, a headline panel: the best ratio's paired AUROC effect and its interval."""
    metrics = tuple(m for m in metrics if (s.metric == m).any()) or metrics
    keys = sorted({tuple(k) for k in s[LINE].drop_duplicates().itertuples(index=False)}, key=str)
    colours = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(keys)}
    labels, shared = line_labels(s)
    headline = best_effects(s) if HEADLINE_METRIC in metrics else None
    head_h, grid_h = (1.3 + 0.45 * len(keys) if headline is not None else 0.0), 2.3 * len(metrics)
    fig = plt.figure(figsize=(10, head_h + grid_h + 1.4), layout="constrained")
    # subfigures: the headline's long row labels must not narrow the metric panels' columns
    if headline is not None:
        top, bottom = fig.subfigures(2, 1, height_ratios=[head_h, grid_h])
        ax, notes = top.subplots(1, 2, width_ratios=[1, 1])
        _draw_headline(ax, notes, headline, labels, colours, keys, HEADLINE_METRIC)
    else:
        bottom = fig
    sets = in_order(s.testset) or list(TESTSETS)
    axes = bottom.subplots(len(metrics), len(sets), squeeze=False)
    for i, m in enumerate(metrics):
        for j, ts in enumerate(sets):
            _draw_metric(axes[i, j], s[(s.metric == m) & (s.testset == ts)], m, ts, keys, colours)
    for ax in axes[-1]:
        ax.set_xlabel("ratio (synthetic fraction; 0 = real only)")
    reps = int(s.replicates.max()) if len(s) else 0
    # the title rides on the one legend: a suptitle and an "outside" legend would share the top and overlap
    what = ("the AUROC gap between the best and the worst patient group" if set(metrics) <= set(GAP_METRICS)
            else "test metrics")
    title = (f"Ratio study: {what} against the synthetic fraction\n" + (shared + "\n" if shared else "")
             + f"points: mean over replicates (up to {reps}); bars: 95 % interval (none below "
             f"{MIN_REPLICATES_FOR_INTERVAL} replicates); lines offset sideways so their bars do not overlap")
    handles = [plt.Line2D([], [], color=colours[k], marker="o", lw=1.2) for k in keys]
    legend = fig.legend(handles, [labels[k] for k in keys], loc="outside upper center", ncols=min(len(keys), 2),
                        fontsize=8, frameon=False, title=title, title_fontsize=9)
    legend.get_title().set_multialignment("center")
    return fig


def plot_curves(s: pd.DataFrame, out_png: Path, metrics: tuple[str, ...] = METRICS) -> None:
    save_figure(sweep_figure(s, metrics), out_png)


def grid(s: pd.DataFrame) -> pd.DataFrame:
    """Mean of the grid metrics per (model, test set, mix) over ratio x real_fraction."""
    g = s[s.metric.isin(GRID_METRICS)]
    return g.pivot_table(index=["model", "testset", "synthetic_class_mix", "pool", "filter", "metric", "real_fraction"],
                         columns="ratio", values="mean")


def plot_grid(s: pd.DataFrame, out_png: Path) -> None:
    panels = list(s[s.metric.isin(GRID_METRICS)].groupby(["model", "testset", "synthetic_class_mix", "metric", "filter",
                                                          "pool"]))
    if not panels:
        return
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False)
    for ax, ((model, ts, mix, metric, filt, pool), g) in zip(axes.flat, panels):
        t = g.pivot_table(index="real_fraction", columns="ratio", values="mean").sort_index(ascending=False)
        im = ax.imshow(t.to_numpy(), vmin=metric_range(metric)[0], vmax=metric_range(metric)[1], cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(t.to_numpy()):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
        ax.set(xticks=range(t.shape[1]), xticklabels=[f"{c:g}" for c in t.columns], yticks=range(t.shape[0]),
               yticklabels=[f"{r:g}" for r in t.index], xlabel="ratio", ylabel="real fraction",
               title=f"{model} {ts} {metric}" + ("" if mix == "match_real" else f" ({mix})")
               + (" control" if pool == CONTROL else "") + f"\n{filter_title(filt)}")
        ax.title.set_fontsize(8)
        fig.colorbar(im, ax=ax, fraction=0.04)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out_png)


# every file a report folder's study consists of (subgroup_gap.png only where gap metrics were logged)
STUDY_FILES = ("ratio_sweep_runs.csv", "ratio_sweep.md", "ratio_sweep.csv", "ratio_sweep.png", "subgroup_gap.png",
               "ratio_grid.md", "ratio_grid.png")
RUNS_FILE = STUDY_FILES[0]


def cells(df: pd.DataFrame) -> set[tuple]:
    """The study's run cells, in one canonical form (a CSV read back and a fresh tidy() compare equal)."""
    df = _with_defaults(df)
    return {(str(m), round(float(r), 6), int(s), str(d), round(float(f), 6), str(x), str(flt), str(pool))
            for m, r, s, d, f, x, flt, pool in df[CELL].drop_duplicates().itertuples(index=False)}


def _describe(cell: tuple) -> str:
    model, ratio, seed, data_seed, frac, mix, filt, pool = cell
    return (f"{model} ratio {ratio:g} seed {seed} data_seed {data_seed} real_fraction {frac:g} {mix} filter {filt}"
            + (" control arm" if pool == CONTROL else ""))


class StudyExists(UserError):
    """The report folder holds a study that the new report would lose runs of."""


def check_replaces(df: pd.DataFrame, out_dir: str | Path) -> None:
    """Refuse (StudyExists) unless `out_dir` has no study, or every run cell of its study is in `df`.

    "The same study" is judged by cells (model, ratio, seeds, condition), not run ids: re-running the
    study gives new ids for the same cells and should refresh it; a report that covers only some of
    the cells (one `dvc exp run` in a fresh clone, a narrower --since) would throw the rest away."""
    out_dir = Path(out_dir)
    runs_file = out_dir / RUNS_FILE
    present = [f for f in STUDY_FILES if (out_dir / f).exists()]
    if not present:
        return
    if not runs_file.is_file():
        raise StudyExists(f"{out_dir} holds a report ({present[0]}) without the runs it was built from ({RUNS_FILE}), "
                          "so whether this one covers it cannot be told: write this one elsewhere with --out DIR, or "
                          "replace it with --force")
    try:
        old = pd.read_csv(runs_file, dtype={"data_seed": str})
        old_cells = cells(old)
    except (ValueError, KeyError) as e:
        raise StudyExists(f"{runs_file} cannot be read ({e}): write this report elsewhere with --out DIR, or replace "
                          "it with --force") from None
    lost = sorted(old_cells - cells(df))
    if lost:
        raise StudyExists(f"{out_dir} holds a study of {old.run_id.nunique()} runs and this report would hold "
                          f"{df.run_id.nunique()}, missing {len(lost)} of the study's {len(old_cells)} (model, ratio, "
                          f"seeds, condition) cells, e.g. {_describe(lost[0])}: write it elsewhere with --out DIR, or "
                          "replace that study with --force")


@dataclass(frozen=True)
class Written:
    summary: pd.DataFrame
    files: list[Path]  # in the order written
    removed: list[Path]  # an earlier study's files this one has no counterpart for


def write_study(df: pd.DataFrame, out_dir: str | Path) -> Written:
    """Write the study of `df` (tidy() rows) into `out_dir`, replacing the study there (see check_replaces)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def out(name: str) -> Path:
        files.append(out_dir / name)
        return files[-1]

    s = summarise(df)
    df.to_csv(out(RUNS_FILE), index=False)  # the inputs: anyone can recompute the summary
    out("ratio_sweep.md").write_text(markdown(df, s))
    s.round(6).to_csv(out("ratio_sweep.csv"), index=False)
    plot_curves(s, out("ratio_sweep.png"))
    if s.metric.isin(GAP_METRICS).any():
        plot_curves(s, out("subgroup_gap.png"), GAP_METRICS)
    t = grid(s)
    out("ratio_grid.md").write_text("# Ratio x real fraction\n\nMean over replicates; columns: ratio.\n\n"
                                    + t.round(3).reset_index().to_markdown(index=False) + "\n")
    if not s[s.metric.isin(GRID_METRICS)].empty:  # plot_grid draws nothing without them
        plot_grid(s, out("ratio_grid.png"))
    # a file of the earlier study left beside this one would read as part of it (a gap plot of other runs)
    removed = [out_dir / f for f in STUDY_FILES if out_dir / f not in files and (out_dir / f).exists()]
    for f in removed:
        f.unlink()
    return Written(s, files, removed)


def write_report(runs: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """The study of every usable run in `runs` (mlflow.search_runs output), written to `out_dir`; its summary."""
    df = tidy(screen_runs(runs)[0])
    if df.empty:
        raise UserValueError("no evaluated runs in the MLflow experiment 'dermsynth' (run `dvc repro` or the sweep first)")
    return write_study(df, out_dir).summary
