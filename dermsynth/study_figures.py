"""The ratio study's figures: metrics against ratio with a headline panel, the ratio x real fraction grid."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dermsynth.arms import CONTROL, SYNTHETIC  # noqa: E402
from dermsynth.classify.metrics import METRICS  # noqa: E402
from dermsynth.plotting import save_figure  # noqa: E402
from dermsynth.runs import GAP_METRICS, TESTSETS  # noqa: E402
from dermsynth.study_stats import GRID_METRICS, MIN_REPLICATES_FOR_INTERVAL, metric_range  # noqa: E402
from dermsynth.synthetic_source import LORA_GENERATOR  # noqa: E402
from dermsynth.testset_names import in_order, testset_name  # noqa: E402

# What a reader calls each metric, test set and filter setting (the CSV codes stay as they are)
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                 "sensitivity": "sensitivity (malignant found)", "specificity": "specificity (benign cleared)",
                 "f1": "F1 of malignant", "auc": "AUROC", "pauc80": "pAUC above 80 % sensitivity (at most 0.2)"}
FILTER_SCORES = {"realism": "realism", "label": "label probability", "combined": "realism and label probability"}
LINE = ["model", "synthetic_class_mix", "real_fraction", "filter", "pool", "generator"]  # one line per value
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


def generator_title(generator: str) -> str:
    """`lora skin_tone=uniform` -> words: what made the synthetic images."""
    if generator == LORA_GENERATOR:
        return "the LoRAs' images"
    if generator.startswith(LORA_GENERATOR + " "):
        return "the LoRAs' images asked for " + generator[len(LORA_GENERATOR) + 1:]
    return f"the released set {generator}"


def _part_titles(model: str, mix: str, frac: float, filt: str, pool: str = SYNTHETIC,
                 generator: str = LORA_GENERATOR) -> tuple[str, ...]:
    return (model, MIX_TITLES.get(mix, "synthetic class mix as in the real set"),
            "all real training images" if frac == 1.0 else f"{frac:.0%} of the real training images",
            filter_title(filt),
            "held-out real images in the synthetic slots (control)" if pool == CONTROL else POOL_TITLE,
            generator_title(generator))


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
    plain = {"pool": POOL_TITLE, "generator": generator_title(LORA_GENERATOR)}  # the usual: nothing to say
    shared = [p for i, p in enumerate(parts[keys[0]]) if not varies[i] and plain.get(LINE[i]) != p] if keys else []
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


def plot_grid(s: pd.DataFrame, out_png: Path) -> None:
    panels = list(s[s.metric.isin(GRID_METRICS)].groupby(["model", "testset", "synthetic_class_mix", "metric", "filter",
                                                          "pool", "generator"]))
    if not panels:
        return
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False)
    for ax, ((model, ts, mix, metric, filt, pool, generator), g) in zip(axes.flat, panels):
        t = g.pivot_table(index="real_fraction", columns="ratio", values="mean").sort_index(ascending=False)
        im = ax.imshow(t.to_numpy(), vmin=metric_range(metric)[0], vmax=metric_range(metric)[1], cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(t.to_numpy()):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
        ax.set(xticks=range(t.shape[1]), xticklabels=[f"{c:g}" for c in t.columns], yticks=range(t.shape[0]),
               yticklabels=[f"{r:g}" for r in t.index], xlabel="ratio", ylabel="real fraction",
               title=f"{model} {ts} {metric}" + ("" if mix == "match_real" else f" ({mix})")
               + (" control" if pool == CONTROL else "") + f"\n{filter_title(filt)}"
               + ("" if generator == LORA_GENERATOR else f"; {generator}"))
        ax.title.set_fontsize(8)
        fig.colorbar(im, ax=ax, fraction=0.04)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out_png)
