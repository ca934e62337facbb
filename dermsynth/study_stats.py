"""The ratio study's statistics: per-run rows from MLflow, levels with bounded intervals, paired effects."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from dermsynth.arms import SYNTHETIC, detectable_effect
from dermsynth.classify.metrics import METRICS
from dermsynth.runs import GAP_METRICS, Skipped, model_label, param, run_name
from dermsynth.synthetic_source import LORA_GENERATOR
from dermsynth.testset_names import testsets

CONDITION = ["model", "testset", "metric", "synthetic_class_mix", "pool", "real_fraction", "filter", "generator"]
REPLICATE = ["seed", "data_seed"]
# one run's place in a study: its condition (less the per-row test set and metric), ratio and replicate
CELL = ["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix", "filter", "pool", "generator"]
MIN_REPLICATES_FOR_INTERVAL = 3
GRID_METRICS = ("auc", "balanced_accuracy")


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
                rows.append({"model": model_label(r), "ratio": ratio, "seed": int(r["params.seed"]),
                             "data_seed": str(param(r, "data_seed", "?")),
                             "real_fraction": float(param(r, "real_fraction", 1.0)),
                             "synthetic_class_mix": str(param(r, "synthetic_class_mix", "balanced")),
                             "filter": f"{param(r, 'filter_policy', 'none')} {float(param(r, 'keep_fraction', 1.0)):g}",
                             "generator": str(param(r, "generator", LORA_GENERATOR)),
                             # ratio 0 fills no slot: the same training set in both arms, one shared baseline
                             "pool": str(param(r, "pool", SYNTHETIC)) if ratio > 0 else SYNTHETIC,
                             "testset": ts, "metric": m, "value": float(v), "run_id": r["run_id"]})
    return pd.DataFrame(rows, columns=["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix",
                                       "filter", "pool", "generator", "testset", "metric", "value", "run_id"])


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


def with_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """Per-run tables exported before the filter stage (every synthetic image), the control arm or the
    generator condition (the LoRAs with their fixed prompts)."""
    if "filter" not in df.columns:
        df = df.assign(filter="none 1")
    if "generator" not in df.columns:
        df = df.assign(generator=LORA_GENERATOR)
    return df if "pool" in df.columns else df.assign(pool=SYNTHETIC)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    df = with_defaults(df)
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


def grid(s: pd.DataFrame) -> pd.DataFrame:
    """Mean of the grid metrics per (model, test set, mix) over ratio x real_fraction."""
    g = s[s.metric.isin(GRID_METRICS)]
    return g.pivot_table(index=["model", "testset", "synthetic_class_mix", "pool", "filter", "generator", "metric",
                                "real_fraction"],
                         columns="ratio", values="mean")
