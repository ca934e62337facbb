"""The ratio study: every MLflow run's test metrics against `ratio`, per model and test set.

For each (model, test set, ratio): mean over seeds and a 95% t-interval over seeds; for each
ratio > 0, a paired t-test against ratio 0 on the seeds both have (paired by seed, so the split
and the initialisation noise cancel). Writes reports/ratio_sweep.md and reports/ratio_sweep.png.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from dermsynth.classify.metrics import METRICS  # noqa: E402

TESTSETS = ("isic", "ham10000")


def tidy(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, test set, metric) from mlflow.search_runs output."""
    rows = []
    for _, r in runs.iterrows():
        for ts in TESTSETS:
            for m in METRICS:
                v = r.get(f"metrics.{ts}_{m}")
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    rows.append({"model": r["params.model"], "ratio": float(r["params.ratio"]), "seed": int(r["params.seed"]),
                                 "testset": ts, "metric": m, "value": float(v), "run_id": r["run_id"]})
    df = pd.DataFrame(rows, columns=["model", "ratio", "seed", "testset", "metric", "value", "run_id"])
    # a re-run of the same (model, ratio, seed) supersedes the older one
    return df.drop_duplicates(["model", "ratio", "seed", "testset", "metric"], keep="first")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (model, ts, metric, ratio), g in df.groupby(["model", "testset", "metric", "ratio"]):
        n, mean = len(g), g.value.mean()
        half = stats.t.ppf(0.975, n - 1) * g.value.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        base = df[(df.model == model) & (df.testset == ts) & (df.metric == metric) & (df.ratio == 0.0)]
        paired = g.merge(base, on="seed", suffixes=("", "_0"))
        p = float("nan")
        if ratio != 0.0 and len(paired) > 1 and (paired.value - paired.value_0).std() > 0:
            p = float(stats.ttest_rel(paired.value, paired.value_0).pvalue)
        delta = float((paired.value - paired.value_0).mean()) if ratio != 0.0 and len(paired) else float("nan")
        out.append({"model": model, "testset": ts, "metric": metric, "ratio": ratio, "seeds": n, "mean": mean,
                    "ci95_low": mean - half, "ci95_high": mean + half, "delta_vs_real_only": delta, "p_paired_t": p})
    return pd.DataFrame(out)


def write_report(runs: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = tidy(runs)
    if df.empty:
        raise ValueError("no evaluated runs in the MLflow experiment 'dermsynth' (run `dvc repro` or the sweep first)")
    s = summarise(df)
    lines = ["# Ratio study", "",
             f"{df.run_id.nunique()} MLflow runs; ratio = fraction of synthetic training images. Mean over seeds "
             "[95% t-interval]; delta and p: paired t-test against ratio 0 on matching seeds.", ""]
    for (model, ts), g in s.groupby(["model", "testset"]):
        lines += [f"## {model} on {ts}", "", "| ratio | seeds | " + " | ".join(METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for ratio, gr in g.groupby("ratio"):
            cells = []
            for m in METRICS:
                r = gr[gr.metric == m]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                cell = f"{r['mean']:.3f}" + (f" [{r.ci95_low:.3f}, {r.ci95_high:.3f}]" if not math.isnan(r.ci95_low) else "")
                if not math.isnan(r.delta_vs_real_only):
                    cell += f" (Δ {r.delta_vs_real_only:+.3f}" + (f", p={r.p_paired_t:.3g}" if not math.isnan(r.p_paired_t) else "") + ")"
                cells.append(cell)
            lines.append(f"| {ratio:g} | {int(gr.seeds.max())} | " + " | ".join(cells) + " |")
        lines.append("")
    (out_dir / "ratio_sweep.md").write_text("\n".join(lines) + "\n")
    fig, axes = plt.subplots(len(METRICS), len(TESTSETS), figsize=(9, 2.3 * len(METRICS)), squeeze=False)
    for i, m in enumerate(METRICS):
        for j, ts in enumerate(TESTSETS):
            ax = axes[i, j]
            for model, g in s[(s.metric == m) & (s.testset == ts)].groupby("model"):
                g = g.sort_values("ratio")
                err = np.nan_to_num(np.vstack([g["mean"] - g.ci95_low, g.ci95_high - g["mean"]]))
                ax.errorbar(g.ratio, g["mean"], yerr=err, marker="o", capsize=3, label=model)
            ax.set(title=f"{ts}: {m}", xlabel="synthetic fraction (ratio)")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "ratio_sweep.png", dpi=100)
    plt.close(fig)
    s.to_csv(out_dir / "ratio_sweep.csv", index=False)
    return s
