"""Hybrid real + synthetic training sets.

`ratio` is the fraction of synthetic images in the training set (0 = real only, 0.75 = 1:3
real:synthetic, 1 = synthetic only). Two ways to reach it:

- `fixed_size` (default): the set keeps the size N of the real training set; N*(1-ratio) real
  images (stratified, so the real class mix is kept) and N*ratio synthetic ones. Ratios then
  compare at equal size, which isolates the effect of *what* the images are.
- `add`: every real image, plus synthetic ones until they make up `ratio` of the set.

The synthetic part is class-balanced (as generated: 50/50).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
MIX_COLUMNS = ["image_id", "path", "label", "origin"]


@dataclass(frozen=True)
class MixConfig:
    mode: str = "fixed_size"  # fixed_size | add
    neg_pos_ratio: float = 0.0  # > 0: keep at most this many benign per malignant real image (negative downsampling)


def _take(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    n = min(n, len(df))
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))] if n else df.iloc[:0]


def _stratified(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows keeping the label proportions of `df` (largest remainder rounding)."""
    if n >= len(df):
        return df
    share = df["label"].value_counts().sort_index() * n / len(df)
    counts = np.floor(share).astype(int)
    for lab in (share - counts).sort_values(ascending=False).index[: n - counts.sum()]:
        counts[lab] += 1
    return pd.concat([_take(df[df.label == lab], int(c), rng) for lab, c in counts.items()])


def _balanced(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    labels = sorted(df["label"].unique())
    per = [n // len(labels) + (1 if i < n % len(labels) else 0) for i in range(len(labels))]
    parts = [_take(df[df.label == lab], k, rng) for lab, k in zip(labels, per)]
    short = [(lab, k, len(p)) for lab, k, p in zip(labels, per, parts) if len(p) < k]
    if short:
        log.warning("not enough synthetic images: %s (wanted, got); the achieved ratio is lower", short)
    return pd.concat(parts)


def downsample_negatives(real: pd.DataFrame, neg_pos_ratio: float, rng: np.random.Generator) -> pd.DataFrame:
    if neg_pos_ratio <= 0:
        return real
    pos, neg = real[real.label == "malignant"], real[real.label == "benign"]
    return pd.concat([pos, _take(neg, int(round(neg_pos_ratio * len(pos))), rng)])


def mix(real: pd.DataFrame, synthetic: pd.DataFrame, ratio: float, cfg: MixConfig, seed: int) -> tuple[pd.DataFrame, dict]:
    """The training table (image_id, path, label, origin) and its counts."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    rng = np.random.default_rng(seed)
    real = downsample_negatives(real, cfg.neg_pos_ratio, rng)
    n = len(real)
    if cfg.mode == "fixed_size":
        n_syn = int(round(ratio * n))
        n_real = n - n_syn
    elif cfg.mode == "add":
        if ratio >= 1.0:
            raise ValueError("ratio=1 in 'add' mode would need infinitely many synthetic images; use fixed_size")
        n_real = n
        n_syn = int(round(ratio * n / (1.0 - ratio)))
    else:
        raise ValueError(f"unknown mixing mode {cfg.mode!r}; use fixed_size or add")
    if n_syn > 0 and len(synthetic) == 0:
        raise ValueError(f"ratio={ratio} needs synthetic images but the synthetic set is empty")
    part_real = _stratified(real, n_real, rng).assign(origin="real")
    part_syn = _balanced(synthetic, n_syn, rng).assign(origin="synthetic") if n_syn else synthetic.iloc[:0].assign(origin="synthetic")
    out = pd.concat([part_real[MIX_COLUMNS], part_syn[MIX_COLUMNS]], ignore_index=True)
    out = out.iloc[rng.permutation(len(out))].reset_index(drop=True)
    counts = {f"n_{o}_{lab}": int(((out.origin == o) & (out.label == lab)).sum())
              for o in ("real", "synthetic") for lab in ("benign", "malignant")}
    counts |= {"n_train": len(out), "achieved_ratio": round(float((out.origin == "synthetic").mean()), 4) if len(out) else 0.0}
    return out, counts
