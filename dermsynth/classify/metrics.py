"""Test metrics of a binary malignant-vs-benign classifier, and their bootstrap intervals.

Names follow docs/contracts.md: accuracy, balanced_accuracy, sensitivity, specificity, f1, auc, pauc80.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "auc", "pauc80")


def pauc_above_tpr(y: np.ndarray, score: np.ndarray, min_tpr: float = 0.80) -> float:
    """Partial AUC above `min_tpr` true-positive rate, as the ISIC 2024 challenge scores it.

    The area between the ROC curve and the line TPR = min_tpr, in [0, 1 - min_tpr] (0.2 for a
    perfect classifier). Computed as the challenge does: swap the roles of the classes so the
    region becomes a low-FPR one, take scikit-learn's McClish-standardised partial AUC and undo
    the standardisation.
    """
    y, score = np.asarray(y), np.asarray(score, dtype=float)
    max_fpr = 1.0 - min_tpr
    scaled = roc_auc_score(1 - y, -score, max_fpr=max_fpr)
    return float(0.5 * max_fpr**2 + (max_fpr - 0.5 * max_fpr**2) / 0.5 * (scaled - 0.5))


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (chosen on validation)."""
    fpr, tpr, thr = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """The seven test metrics at `threshold` (counts in numpy: the bootstrap calls this 1000s of times)."""
    y, score = np.asarray(y).astype(int), np.asarray(score, dtype=float)
    pred = score >= threshold
    pos = y == 1
    tp, fn = int((pred & pos).sum()), int((~pred & pos).sum())
    fp, tn = int((pred & ~pos).sum()), int((~pred & ~pos).sum())
    nan = float("nan")
    sens = tp / (tp + fn) if tp + fn else nan
    spec = tn / (tn + fp) if tn + fp else nan
    both = bool(tp + fn) and bool(tn + fp)
    return {
        "accuracy": (tp + tn) / len(y),
        "balanced_accuracy": (sens + spec) / 2 if both else nan,
        "sensitivity": sens,
        "specificity": spec,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "auc": float(roc_auc_score(y, score)) if both else nan,
        "pauc80": pauc_above_tpr(y, score) if both else nan,
    }


def stratified_resample(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of one bootstrap resample drawn within each class: every resample keeps the test
    set's class counts, so none lacks a class and none has to be dropped (which would bias the interval)."""
    return np.concatenate([rng.choice(idx, len(idx), replace=True) for idx in (np.flatnonzero(y == c) for c in np.unique(y))])


def bootstrap_ci(y: np.ndarray, score: np.ndarray, threshold: float, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile interval of every metric over class-stratified bootstrap resamples."""
    y, score = np.asarray(y).astype(int), np.asarray(score, dtype=float)
    rng = np.random.default_rng(seed)
    samples = {m: [] for m in METRICS}
    for _ in range(n if len(y) else 0):
        idx = stratified_resample(y, rng)
        for k, v in binary_metrics(y[idx], score[idx], threshold).items():
            samples[k].append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {m: (float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))) if v and not np.isnan(v).all()
            else (float("nan"),) * 2 for m, v in samples.items()}
