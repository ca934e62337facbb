"""Leak-free, label-stratified train/val/test splits.

Rows are grouped by connected components over shared lesion_id, shared patient_id and
near-duplicate clusters (across sources), so no lesion, patient or copy of an image sits in two
splits. Groups are assigned with scikit-learn's StratifiedGroupKFold, stratified on source x label
so that both test sets (ISIC and HAM10000) keep the class mix.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from dermsynth.data.dedup import UnionFind
from dermsynth.errors import UserValueError


def group_ids(df: pd.DataFrame, dup_pairs: list[tuple[int, int]]) -> np.ndarray:
    """A group label per row: rows sharing a lesion, a patient or a duplicate pair are one group."""
    uf = UnionFind(len(df))
    for col in ("lesion_id", "patient_id"):
        first: dict[str, int] = {}
        for i, v in enumerate(df[col].fillna("").astype(str)):
            if v:
                uf.union(first.setdefault(v, i), i)
    for i, j in dup_pairs:
        uf.union(i, j)
    return uf.labels()


def _one_fold(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a held-out part of about `fraction` of the rows, whole groups only: one fold of
    round(1 / fraction), or above a half all folds but one of round(1 / (1 - fraction)) (2/3 = 2 of 3 folds;
    one fold alone could never hold more than half)."""
    if fraction > 0.5:
        return ~_one_fold(y, groups, 1 - fraction, seed)
    n_splits = max(2, int(round(1 / fraction)))
    n_splits = min(n_splits, len(np.unique(groups)))
    if n_splits < 2:
        raise UserValueError("too few groups to split; need at least 2 independent lesions")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(cv.split(np.zeros(len(y)), y, groups))
    mask = np.zeros(len(y), bool)
    mask[held] = True
    return mask


def assign_splits(df: pd.DataFrame, groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    strata = (df["source"].astype(str) + "|" + df["label"].astype(str)).to_numpy()
    split = np.full(len(df), "train", dtype=object)
    test = _one_fold(strata, groups, test_fraction, seed)
    split[test] = "test"
    rest = np.flatnonzero(~test)
    val = _one_fold(strata[rest], groups[rest], val_fraction / (1 - test_fraction), seed + 1)
    split[rest[val]] = "val"
    return split


def crossing_groups(df: pd.DataFrame, key: str) -> list[str]:
    """Values of `key` that appear in more than one split (must be empty)."""
    sub = df[df[key].fillna("").astype(str) != ""]
    n = sub.groupby(key)["split"].nunique()
    return sorted(n[n > 1].index.astype(str))
