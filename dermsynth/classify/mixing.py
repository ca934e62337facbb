"""Hybrid real + synthetic training sets.

`ratio` is the fraction of synthetic images in the training set (0 = real only, 0.75 = 1:3
real:synthetic, 1 = synthetic only). Two ways to reach it:

- `fixed_size` (default): the set keeps the size N of the real training set; N*(1-ratio) real
  images (stratified, so the real class mix is kept) and N*ratio synthetic ones. Ratios then
  compare at equal size, which isolates the effect of *what* the images are.
- `add`: every real image, plus synthetic ones until they make up `ratio` of the set.

The synthetic part has the real part's class mix by default (`synthetic_class_mix:
match_real`), so every class has the same synthetic share at every ratio: were it drawn 50/50
from the balanced synthetic set, most malignant training images would be synthetic while most
benign ones were real, "looks synthetic" would become a malignancy cue, and each ratio would
change the class mix as well. `balanced` (50/50) is the explicit alternative.

`minority` (the UFPE design for extreme imbalance) keeps every real image and adds synthetic images
to the minority class only, until it makes up `minority_target` of the set; `ratio` 0 is its real-only
control and any ratio > 0 fills to the target. Class and origin then go together, as under `balanced`.

`real_fraction` < 1 first keeps that share of the real training set, drawn by whole groups
(lesion / patient / duplicate cluster), for the data-limited axis of the study.

`pool: held_out_real` is the study's positive control: the "synthetic" slots, at the same ratio, class
mix and counts, are filled with real training images from the groups `real_fraction` left out: new
images from the true distribution, what a perfect generator would give. Their origin is `held_out_real`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dermsynth.contracts import MIX_COLUMNS
from dermsynth.errors import UserValueError
from dermsynth.params import Mixing, Train, defaults_from


log = logging.getLogger(__name__)


@dataclass(frozen=True)
@defaults_from(Mixing, Train)
class MixConfig:
    mode: str
    neg_pos_ratio: float
    synthetic_class_mix: str
    real_fraction: float
    pool: str
    minority_target: float


CLASS_MIXES = ("match_real", "balanced", "minority")
POOLS = ("synthetic", "held_out_real")
HELD_OUT = "held_out_real"  # the origin of a control-arm image


def _take(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    n = min(n, len(df))
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))] if n else df.iloc[:0]


def _allocate(n: int, shares: pd.Series) -> pd.Series:
    """`n` split by `shares` (summing to 1), largest remainder first: exact total, each within one."""
    want = shares * n
    counts = np.floor(want).astype(int)
    for lab in (want - counts).sort_values(ascending=False, kind="stable").index[: n - counts.sum()]:
        counts[lab] += 1
    return counts


def _plan_counts(real_counts: pd.Series, ratio: float, cfg: MixConfig) -> tuple[pd.Series, pd.Series]:
    """Real and synthetic images per class.

    match_real decides per class, so each class gets `ratio` synthetic to within one image;
    balanced fixes the synthetic total and splits it 50/50 (the real part keeps its mix).
    """
    n = int(real_counts.sum())
    if cfg.synthetic_class_mix == "minority":
        return real_counts, _minority_fill(real_counts, cfg.minority_target) if ratio > 0 else real_counts * 0
    if cfg.mode == "add" and ratio >= 1.0:
        raise UserValueError("ratio=1 in 'add' mode would need infinitely many synthetic images; use fixed_size")
    per_real = ratio if cfg.mode == "fixed_size" else ratio / (1.0 - ratio)  # synthetic per real image
    if cfg.synthetic_class_mix == "match_real":
        syn = (real_counts * per_real).round().astype(int)
        real = real_counts - syn if cfg.mode == "fixed_size" else real_counts
        return real, syn
    n_syn = int(round(n * per_real))
    syn = _allocate(n_syn, pd.Series(1.0 / len(real_counts), index=real_counts.index))
    real = _allocate(n - n_syn, real_counts / max(n, 1)) if cfg.mode == "fixed_size" else real_counts
    return real, syn


def _minority_fill(real_counts: pd.Series, target: float) -> pd.Series:
    """Synthetic images per class that bring the rarer class to `target` of the set: s with
    (n_min + s) / (n + s) = target, none when it is already there; the other class gets none."""
    minority = real_counts.sort_values(kind="stable").index[0]
    n, n_min = int(real_counts.sum()), int(real_counts[minority])
    fill = pd.Series(0, index=real_counts.index)
    fill[minority] = max(0, int(round((target * n - n_min) / (1.0 - target))))
    return fill


def subsample_groups(real: pd.DataFrame, fraction: float, rng: np.random.Generator) -> pd.DataFrame:
    """About `fraction` of the rows, taking whole groups (no lesion is split), per class."""
    if fraction >= 1.0:
        return real
    if not 0.0 < fraction < 1.0:
        raise UserValueError(f"real_fraction must be in (0, 1], got {fraction}")
    key = real["group"] if "group" in real else real.get("lesion_id", real["image_id"])
    key = key.where(key.astype(str) != "", real["image_id"]).astype(str)
    keep = []
    for lab in sorted(real["label"].unique()):
        groups = pd.unique(key[real.label == lab])
        order = rng.permutation(len(groups))
        sizes = key[real.label == lab].value_counts().reindex(groups[order])
        target = fraction * (real.label == lab).sum()
        # whole groups in random order until the class reaches its share (at least one group)
        n_groups = max(int(np.searchsorted(sizes.cumsum().to_numpy(), target, side="left")) + 1, 1)
        keep.extend(sizes.index[:n_groups])
    return real[key.isin(set(keep)).to_numpy()]


def downsample_negatives(real: pd.DataFrame, neg_pos_ratio: float, rng: np.random.Generator) -> pd.DataFrame:
    if neg_pos_ratio <= 0:
        return real
    pos, neg = real[real.label == "malignant"], real[real.label == "benign"]
    return pd.concat([pos, _take(neg, int(round(neg_pos_ratio * len(pos))), rng)])


def _check_held_out(n_syn: pd.Series, held_out: pd.DataFrame, ratio: float, real_fraction: float) -> None:
    """The control arm must fill every slot: fewer real images would make it a different study."""
    have = held_out["label"].value_counts()
    for lab, k in n_syn.items():
        if k > have.get(lab, 0):
            raise UserValueError(
                f"train.mixing.pool=held_out_real at ratio={ratio:g}: the {lab} slots need {int(k)} images, the groups "
                f"that real_fraction={real_fraction:g} left out hold {int(have.get(lab, 0))}; lower ratio or "
                "real_fraction")


def mix(real: pd.DataFrame, synthetic: pd.DataFrame, ratio: float, cfg: MixConfig, seed: int) -> tuple[pd.DataFrame, dict]:
    """The training table (image_id, path, label, origin) and its counts."""
    if not 0.0 <= ratio <= 1.0:
        raise UserValueError(f"ratio must be in [0, 1], got {ratio}")
    if cfg.mode not in ("fixed_size", "add"):
        raise UserValueError(f"unknown mixing mode {cfg.mode!r}; use fixed_size or add")
    if cfg.synthetic_class_mix not in CLASS_MIXES:
        raise UserValueError(f"unknown synthetic_class_mix {cfg.synthetic_class_mix!r}; use {', '.join(CLASS_MIXES)}")
    if cfg.pool not in POOLS:
        raise UserValueError(f"unknown mixing pool {cfg.pool!r}; use {' or '.join(POOLS)}")
    if cfg.synthetic_class_mix == "minority" and not 0.0 < cfg.minority_target < 1.0:
        raise UserValueError(f"minority_target must be in (0, 1), got {cfg.minority_target}")
    rng = np.random.default_rng(seed)
    kept = subsample_groups(real, cfg.real_fraction, rng)
    if cfg.pool == HELD_OUT:  # the control arm draws its "synthetic" images from the groups left out
        synthetic = real[~real.index.isin(kept.index)]
    real = downsample_negatives(kept, cfg.neg_pos_ratio, rng)
    labels = sorted(set(real["label"]) | set(synthetic["label"]))
    n_real, n_syn = _plan_counts(real["label"].value_counts().reindex(labels, fill_value=0), ratio, cfg)
    if cfg.pool == HELD_OUT:
        _check_held_out(n_syn, synthetic, ratio, cfg.real_fraction)
    elif n_syn.sum() > 0 and len(synthetic) == 0:
        raise UserValueError(f"ratio={ratio} needs synthetic images but the synthetic set is empty")
    part_real = pd.concat([_take(real[real.label == lab], int(k), rng) for lab, k in n_real.items()])
    parts_syn = [_take(synthetic[synthetic.label == lab], int(k), rng) for lab, k in n_syn.items()]
    short = [(lab, int(k), len(p)) for (lab, k), p in zip(n_syn.items(), parts_syn) if len(p) < k]
    if short:
        log.warning("not enough synthetic images: %s (wanted, got); the achieved ratio is lower", short)
    part_syn = pd.concat(parts_syn) if parts_syn else synthetic.iloc[:0]
    origin = HELD_OUT if cfg.pool == HELD_OUT else "synthetic"
    out = pd.concat([part_real.assign(origin="real")[MIX_COLUMNS], part_syn.assign(origin=origin)[MIX_COLUMNS]],
                    ignore_index=True)
    out = out.iloc[rng.permutation(len(out))].reset_index(drop=True)
    # n_synthetic_*: the synthetic slots, whichever pool filled them (the two arms compare count for count)
    slot = np.where(out.origin == "real", "real", "synthetic")
    counts = {f"n_{o}_{lab}": int(((slot == o) & (out.label == lab)).sum())
              for o in ("real", "synthetic") for lab in ("benign", "malignant")}
    counts |= {"n_train": len(out), "achieved_ratio": round(float((slot == "synthetic").mean()), 4) if len(out) else 0.0}
    for lab in ("benign", "malignant"):  # the confound check: equal shares under match_real
        n_lab = counts[f"n_real_{lab}"] + counts[f"n_synthetic_{lab}"]
        counts[f"synthetic_share_{lab}"] = round(counts[f"n_synthetic_{lab}"] / n_lab, 4) if n_lab else 0.0
    return out, counts
