"""What a ratio study can see: the smallest effect it detects, and synthetic images against a perfect generator.

- **Power.** An effect is the mean paired difference to ratio 0 over n replicates, tested with a paired
  t-test. `detectable_effect` is the smallest true mean difference that test finds with the given
  power at level alpha, from the standard deviation of the paired differences: the noncentral t
  distribution, solved exactly (not the normal approximation, which is optimistic at 3-5 pairs). A
  "no effect" verdict says nothing about effects smaller than that.
- **Synthetic efficiency.** The control arm (`train.mixing.pool: held_out_real`) fills the synthetic
  slots with real images of groups the classifier would otherwise never see: what a perfect
  generator would give. Efficiency = the synthetic arm's effect / the control arm's effect, on the
  same replicates and ratio-0 baseline (1 = as good as new real images, 0 = no gain), with a
  percentile bootstrap interval over the replicates. Where the control arm itself shows no effect
  (its interval holds 0), the study is too small to tell anything, and the table says so.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import integrate, optimize, stats

from dermsynth.synthetic_source import LORA_GENERATOR

ALPHA, POWER = 0.05, 0.8
SYNTHETIC, CONTROL = "synthetic", "held_out_real"
# what identifies an arm's cell apart from its pool (report.CONDITION less the pool, plus ratio)
ARM_KEYS = ["model", "testset", "metric", "synthetic_class_mix", "real_fraction", "filter", "generator", "ratio"]
REPLICATE = ["seed", "data_seed"]
MIN_PAIRS = 3  # as report.MIN_REPLICATES_FOR_INTERVAL: fewer pairs give no interval
BOOTSTRAP = 2000


def paired_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test of n pairs whose differences have mean `effect` and SD `sd`."""
    if n < 2 or not sd > 0:
        return float("nan")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    nc = effect * math.sqrt(n) / sd
    p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if math.isfinite(p):
        return p
    # scipy's noncentral t returns NaN far in its tail at 1 degree of freedom (2 pairs): integrate the same
    # probability over the chi-square of the SD estimate, T = (Z + nc) / sqrt(V / df)
    def rejects(v: float) -> float:
        c = crit * math.sqrt(v / df)
        return (stats.norm.sf(c - nc) + stats.norm.cdf(-c - nc)) * stats.chi2.pdf(v, df)
    return float(integrate.quad(rejects, 0, math.inf, limit=200)[0])


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean paired difference the test detects with `power` (NaN below 2 pairs or at SD 0)."""
    if n < 2 or not sd > 0:
        return float("nan")
    hi = sd
    while paired_power(hi, sd, n, alpha) < power:  # bracket the root: power grows with the effect
        hi *= 2
    return float(optimize.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-10 * sd))


def replicates_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER, most: int = 10_000) -> int:
    """Pairs (seeds) a paired t-test needs to detect `effect` with `power`, given the SD of the differences."""
    for n in range(2, most + 1):
        if paired_power(effect, sd, n, alpha) >= power:
            return n
    return most


def _paired(df: pd.DataFrame) -> pd.DataFrame:
    """Per (arm cell, replicate): the difference of each arm to the ratio-0 run of the same replicate. Ratio 0
    trains the same set in both arms, so both arms share one baseline."""
    base = df[df.ratio == 0.0].drop(columns=["ratio", "pool", "run_id"], errors="ignore")
    keys = [k for k in ARM_KEYS if k != "ratio"] + REPLICATE
    base = base.drop_duplicates(keys).rename(columns={"value": "value_0"})
    arms = df[df.ratio > 0].merge(base[keys + ["value_0"]], on=keys)
    arms["diff"] = arms.value - arms.value_0
    wide = arms.pivot_table(index=ARM_KEYS + REPLICATE, columns="pool", values="diff").reset_index()
    return wide.dropna(subset=[c for c in (SYNTHETIC, CONTROL) if c in wide]) if CONTROL in wide else wide.iloc[:0]


def synthetic_efficiency(df: pd.DataFrame, seed: int = 0, n_boot: int = BOOTSTRAP) -> pd.DataFrame:
    """One row per arm cell holding both arms (study_stats.tidy() rows with a `pool` column): each arm's mean
    effect, the efficiency and its 95 % bootstrap interval (3+ pairs), and whether the control arm sees
    an effect at all (its paired t-interval excludes 0)."""
    wide = _paired(df.assign(pool=df.get("pool", SYNTHETIC), generator=df.get("generator", LORA_GENERATOR)))
    rows, rng = [], np.random.default_rng(seed)
    for key, g in wide.groupby(ARM_KEYS, sort=True):
        syn, ctrl = g[SYNTHETIC].to_numpy(), g[CONTROL].to_numpy()
        n = len(g)
        row = dict(zip(ARM_KEYS, key)) | {"pairs": n, "effect_synthetic": syn.mean(), "effect_control": ctrl.mean(),
                                          "efficiency": _ratio(syn.mean(), ctrl.mean()),
                                          "efficiency_low": math.nan, "efficiency_high": math.nan}
        sees = False
        if n >= MIN_PAIRS:
            idx = rng.integers(0, n, size=(n_boot, n))  # replicates resampled jointly: both arms share them
            boot = np.array([_ratio(a, b) for a, b in zip(syn[idx].mean(1), ctrl[idx].mean(1))])
            boot = boot[np.isfinite(boot)]
            if len(boot):
                row["efficiency_low"], row["efficiency_high"] = np.percentile(boot, [2.5, 97.5])
            half = stats.t.ppf(1 - ALPHA / 2, n - 1) * ctrl.std(ddof=1) / math.sqrt(n)
            sees = bool(abs(ctrl.mean()) > half)
        row["control_sees_an_effect"] = sees
        rows.append(row)
    cols = ARM_KEYS + ["pairs", "effect_synthetic", "effect_control", "efficiency", "efficiency_low",
                       "efficiency_high", "control_sees_an_effect"]
    return pd.DataFrame(rows, columns=cols)


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


def paired_sd(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (model, test set): the standard deviation of `metric`'s paired differences to ratio 0, pooled over
    every cell (ratio > 0, condition) with 2+ pairs (root of the mean variance), and the pairs behind it."""
    df = df.assign(pool=df.get("pool", SYNTHETIC), generator=df.get("generator", LORA_GENERATOR))
    d = df[df.metric == metric]
    keys = ["model", "testset", "synthetic_class_mix", "real_fraction", "filter", "generator"]
    base = d[d.ratio == 0.0].drop_duplicates(keys + REPLICATE)[keys + REPLICATE + ["value"]]
    arms = d[d.ratio > 0].merge(base, on=keys + REPLICATE, suffixes=("", "_0"))
    arms["diff"] = arms.value - arms.value_0
    cells = arms.groupby(keys + ["ratio", "pool"])["diff"].agg(["var", "count"]).reset_index()
    cells = cells[cells["count"] >= 2]
    out = cells.groupby(["model", "testset"]).agg(var=("var", "mean"), pairs=("count", "max"), cells=("var", "size"))
    return out.assign(sd=np.sqrt(out["var"])).drop(columns="var").reset_index()


def plan(sd: float, effect: float, replicates: int, scale: float = 1.0) -> dict:
    """What a study with `replicates` pairs can detect, and how many pairs `effect` needs, at the paired SD
    `sd` times `scale` (sqrt(N0 / N) for a test set of N images instead of N0, see dermsynth power)."""
    s = sd * scale
    return {"sd": s, "detectable": detectable_effect(s, replicates), "replicates_needed": replicates_needed(effect, s)}
