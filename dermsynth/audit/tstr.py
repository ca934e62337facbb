"""Classification accuracy score (Ravuri & Vinyals, 2019) in the audit's fixed feature space.

Train on synthetic, test on real (TSTR): a logistic regression on standardised features, fitted on the
synthetic images only and scored on the real *test* split. Beside it the real-trained reference
(TRTR): the same classifier fitted on the real *train* split, scored on the same real test images.
A TSTR near the TRTR says the synthetic images carry the class information the real ones do; a TSTR
below 0.5 says their labels point the wrong way. The classifier is deliberately small: it measures the
synthetic set, not a model.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

POSITIVE = "malignant"
TRAIN_SPLIT, TEST_SPLIT = "train", "test"
MAX_ITER = 5000

METHOD = ("classification accuracy score (Ravuri & Vinyals 2019): logistic regression (scikit-learn, L2, C=1) on "
          "features standardised over its training set, in the audit's fixed feature space; tstr = trained on the "
          "synthetic images only, trtr = trained on the real train split; both tested on the real test split. "
          "AUC of the positive class's probability; balanced accuracy at probability 0.5")


def _counts(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _problem(labels: np.ndarray, name: str, positive: str) -> str | None:
    """Why `labels` cannot train or test a two-class classifier (None when they can)."""
    y = np.asarray(labels) == positive
    if len(y) == 0:
        return f"no {name} images"
    if y.all() or not y.any():
        return f"the {name} images hold one class only ({_counts(labels)})"
    return None


def fit_and_score(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int,
                  positive: str = POSITIVE, train_name: str = "training", test_name: str = "test",
                  ) -> tuple[float | None, float | None, str | None]:
    """(AUC, balanced accuracy, None) on the test set of a logistic regression fitted on the standardised
    training set; (None, None, reason) when either set lacks a class."""
    reason = _problem(train_y, train_name, positive) or _problem(test_y, test_name, positive)
    if reason:
        return None, None, reason
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER, random_state=seed))
    clf.fit(np.asarray(train_x, np.float64), np.asarray(train_y) == positive)  # classes_ = [False, True]
    x = np.asarray(test_x, np.float64)
    y = np.asarray(test_y) == positive
    auc = roc_auc_score(y, clf.predict_proba(x)[:, 1])
    return float(auc), float(balanced_accuracy_score(y, clf.predict(x))), None


def classification_accuracy_score(real_features: np.ndarray, real_labels: np.ndarray, real_split: np.ndarray,
                                  syn_features: np.ndarray, syn_labels: np.ndarray, seed: int,
                                  positive: str = POSITIVE) -> dict:
    """TSTR and TRTR AUC / balanced accuracy, tested on the real rows whose split is "test" (never "train";
    "val" rows are not used); the count of each set by class, and `tstr_reason` / `trtr_reason` beside a
    value that could not be computed (null)."""
    real_features, real_labels, real_split = np.asarray(real_features), np.asarray(real_labels), np.asarray(real_split)
    train, test = real_split == TRAIN_SPLIT, real_split == TEST_SPLIT
    out: dict = {"method": METHOD, "positive_class": positive}
    if not test.any():
        reason = (f"the audit's real set has no '{TEST_SPLIT}' split rows (splits: {_counts(real_split) or 'none'}): "
                  "no real images to test on")
        tstr = trtr = (None, None, reason)
    else:
        tstr = fit_and_score(syn_features, syn_labels, real_features[test], real_labels[test], seed, positive,
                             "synthetic", "real test")
        trtr = fit_and_score(real_features[train], real_labels[train], real_features[test], real_labels[test], seed,
                             positive, "real train", "real test")
    for name, (auc, bacc, reason) in (("tstr", tstr), ("trtr", trtr)):
        out[f"{name}_auc"], out[f"{name}_balanced_accuracy"] = auc, bacc
        if reason:
            out[f"{name}_reason"] = reason
    out |= {"n_synthetic_train": int(len(syn_labels)), "n_real_train": int(train.sum()), "n_real_test": int(test.sum()),
            "n_by_class": {"synthetic_train": _counts(syn_labels), "real_train": _counts(real_labels[train]),
                           "real_test": _counts(real_labels[test])}}
    return out
