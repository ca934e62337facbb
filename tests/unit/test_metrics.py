"""Test metrics against scikit-learn and against pAUC values worked out by hand."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score

from dermsynth.classify.metrics import binary_metrics, bootstrap_ci, pauc_above_tpr, youden_threshold


def _pauc_by_hand(y, s, min_tpr=0.8):
    """Area between the ROC staircase/segments and TPR = min_tpr, integrating over FPR."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    xs = np.linspace(0, 1, 200001)
    t = np.interp(xs, fpr, tpr)
    return np.trapezoid(np.clip(t - min_tpr, 0, None), xs)


def test_pauc_perfect_random_and_worst():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert pauc_above_tpr(y, y.astype(float)) == pytest.approx(0.2)
    assert pauc_above_tpr(y, 1 - y.astype(float)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    yb = rng.integers(0, 2, 20000)
    assert pauc_above_tpr(yb, rng.random(20000)) == pytest.approx(0.02, abs=0.003)  # chance: 0.2^2 / 2


def test_pauc_small_example_worked_by_hand():
    # 2 positives, 3 negatives. Sorted scores: P(0.9) N(0.8) P(0.7) N(0.4) N(0.2).
    # ROC points: (0,0) (0,.5) (1/3,.5) (1/3,1) (1,1). Above TPR 0.8: a rectangle from FPR 1/3 to 1
    # of height 0.2 -> 2/3 * 0.2 = 0.13333.
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.4, 0.2])
    assert pauc_above_tpr(y, s) == pytest.approx(0.2 * 2 / 3, abs=1e-9)


def test_pauc_matches_direct_integration_on_random_data():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = y * 0.8 + rng.normal(0, 0.6, 300)
    assert pauc_above_tpr(y, s) == pytest.approx(_pauc_by_hand(y, s), abs=1e-4)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.4 + rng.random(200) * 0.7, 0, 1)
    m = binary_metrics(y, s, 0.5)
    p = (s >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["sensitivity"] == pytest.approx(recall_score(y, p))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - p))
    assert m["f1"] == pytest.approx(f1_score(y, p))
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))


def test_youden_threshold_separates_a_separable_set():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.9])
    t = youden_threshold(y, s)
    assert 0.3 < t <= 0.6
    assert binary_metrics(y, s, t)["balanced_accuracy"] == 1.0


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 150)
    s = y * 0.5 + rng.random(150)
    ci = bootstrap_ci(y, s, 0.75, n=300, seed=0)
    m = binary_metrics(y, s, 0.75)
    for k in ("auc", "accuracy", "pauc80"):
        assert ci[k][0] <= m[k] <= ci[k][1]
        assert ci[k][1] - ci[k][0] > 0
    assert ci == bootstrap_ci(y, s, 0.75, n=300, seed=0)


def test_bootstrap_is_stratified_by_class():
    """Every resample keeps the class counts: a rare class never vanishes from a resample."""
    from dermsynth.classify.metrics import stratified_resample

    y = np.array([0] * 40 + [1] * 2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = stratified_resample(y, rng)
        assert len(idx) == len(y) and y[idx].sum() == 2
    s = np.r_[np.linspace(0, 0.6, 40), [0.55, 0.9]]
    ci = bootstrap_ci(y, s, 0.5, n=300, seed=1)
    assert all(lo <= hi for lo, hi in ci.values()) and not np.isnan(ci["auc"][0])
