"""Classification accuracy score (train on synthetic, test on real) on fixed features made with numpy, and the
KID settings the audit reports."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from dermsynth.audit.fidelity import fid_kid, kid_settings
from dermsynth.audit.tstr import classification_accuracy_score


def _set(rng, n_benign, n_malignant, shift=1.5, dim=6):
    """Benign around 0, malignant `shift` away in the first two dimensions (features in numpy only)."""
    x = rng.normal(size=(n_benign + n_malignant, dim))
    x[:, 2] *= 50  # one feature on another scale: the classifier standardises
    x[n_benign:, :2] += shift
    return x, np.array(["benign"] * n_benign + ["malignant"] * n_malignant)


@pytest.fixture
def sets():
    rng = np.random.default_rng(0)
    syn_x, syn_y = _set(rng, 120, 120)
    tr_x, tr_y = _set(rng, 80, 40)
    te_x, te_y = _set(rng, 50, 25)
    va_x, va_y = _set(rng, 30, 15)
    real_x = np.concatenate([tr_x, va_x, te_x])
    real_y = np.concatenate([tr_y, va_y, te_y])
    split = np.array(["train"] * len(tr_y) + ["val"] * len(va_y) + ["test"] * len(te_y))
    return syn_x, syn_y, real_x, real_y, split, (tr_x, tr_y, te_x, te_y)


def _direct(train_x, train_y, test_x, test_y, seed=7):
    """The same classifier written out with scikit-learn, step by step."""
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=5000, random_state=seed).fit(scaler.transform(train_x), train_y == "malignant")
    p = clf.predict_proba(scaler.transform(test_x))[:, list(clf.classes_).index(True)]
    y = test_y == "malignant"
    return roc_auc_score(y, p), balanced_accuracy_score(y, p >= 0.5)


def test_tstr_and_trtr_match_scikit_learn_computed_directly(sets):
    syn_x, syn_y, real_x, real_y, split, (tr_x, tr_y, te_x, te_y) = sets
    out = classification_accuracy_score(real_x, real_y, split, syn_x, syn_y, seed=7)
    auc, bacc = _direct(syn_x, syn_y, te_x, te_y)
    assert out["tstr_auc"] == pytest.approx(auc, abs=1e-12) and out["tstr_balanced_accuracy"] == pytest.approx(bacc)
    auc, bacc = _direct(tr_x, tr_y, te_x, te_y)
    assert out["trtr_auc"] == pytest.approx(auc, abs=1e-12) and out["trtr_balanced_accuracy"] == pytest.approx(bacc)
    assert 0.75 < out["tstr_auc"] <= 1 and 0.75 < out["trtr_auc"] <= 1  # both sets carry the class signal
    assert (out["n_synthetic_train"], out["n_real_train"], out["n_real_test"]) == (240, 120, 75)
    assert out["n_by_class"] == {"synthetic_train": {"benign": 120, "malignant": 120},
                                 "real_train": {"benign": 80, "malignant": 40},
                                 "real_test": {"benign": 50, "malignant": 25}}
    assert out["positive_class"] == "malignant" and "Ravuri" in out["method"]
    assert not any(k.endswith("_reason") for k in out)
    assert classification_accuracy_score(real_x, real_y, split, syn_x, syn_y, seed=7) == out  # deterministic


def test_swapped_synthetic_labels_score_below_chance(sets):
    syn_x, syn_y, real_x, real_y, split, _ = sets
    swapped = np.where(syn_y == "malignant", "benign", "malignant")
    out = classification_accuracy_score(real_x, real_y, split, syn_x, swapped, seed=7)
    assert out["tstr_auc"] < 0.5 and out["tstr_balanced_accuracy"] < 0.5
    assert out["trtr_auc"] > 0.75  # the real-trained reference does not read the synthetic labels


def test_tested_on_the_test_split_only_and_trained_on_the_train_split(sets):
    syn_x, syn_y, real_x, real_y, split, (tr_x, tr_y, te_x, te_y) = sets
    out = classification_accuracy_score(real_x, real_y, split, syn_x, syn_y, seed=7)
    # the rows in a shuffled order, val rows made nonsense: the same numbers (selected by split, not position)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(split))
    x, y = real_x.copy(), real_y.copy()
    val = split == "val"
    x[val] = rng.normal(size=(val.sum(), x.shape[1])) * 100
    y[val] = "malignant"
    assert classification_accuracy_score(x[order], y[order], split[order], syn_x, syn_y, seed=7) == out
    # training rows are never tested on: relabelling every one changes the TRTR (trained on them), not the TSTR
    y = real_y.copy()
    y[split == "train"] = np.where(y[split == "train"] == "malignant", "benign", "malignant")
    flipped = classification_accuracy_score(real_x, y, split, syn_x, syn_y, seed=7)
    assert flipped["tstr_auc"] == out["tstr_auc"] and flipped["n_by_class"]["real_test"] == out["n_by_class"]["real_test"]
    assert flipped["trtr_auc"] < 0.5
    # ...and test rows are never trained on: the TRTR equals a fit on the train rows alone
    assert out["trtr_auc"] == pytest.approx(_direct(tr_x, tr_y, te_x, te_y)[0], abs=1e-12)


def test_no_test_split_is_said_not_raised(sets):
    syn_x, syn_y, real_x, real_y, split, _ = sets
    no_test = np.where(split == "test", "val", split)
    out = classification_accuracy_score(real_x, real_y, no_test, syn_x, syn_y, seed=7)
    for k in ("tstr_auc", "tstr_balanced_accuracy", "trtr_auc", "trtr_balanced_accuracy"):
        assert out[k] is None
    assert "no 'test' split rows" in out["tstr_reason"] and out["trtr_reason"] == out["tstr_reason"]
    assert out["n_real_test"] == 0 and out["n_real_train"] == 120
    # one synthetic class only: the TSTR cannot be trained, the TRTR still is
    one = classification_accuracy_score(real_x, real_y, split, syn_x[:120], syn_y[:120], seed=7)
    assert one["tstr_auc"] is None and "one class only" in one["tstr_reason"] and one["trtr_auc"] > 0.75
    assert "trtr_reason" not in one


def test_kid_settings_say_when_a_small_class_forced_a_smaller_subset():
    assert kid_settings(221, 3000, 50, 100) == {"subsets": 50, "subset_size": 100}
    small = kid_settings(89, 3000, 50, 100)
    assert (small["subsets"], small["subset_size"], small["subset_size_reduced_from"]) == (50, 89, 100)
    assert "kid_subset_size=100" in small["note"] and "89" in small["note"]
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(200, 4))
    out = fid_kid(a, b, seed=1, kid_subset_size=100, kid_subsets=10)
    assert out["kid_settings"] == kid_settings(60, 200, 10, 100) and out["kid_settings"]["subset_size"] == 60
    # the settings change the KID drawn: more, smaller subsets
    assert fid_kid(a, b, seed=1, kid_subset_size=30, kid_subsets=20)["kid"] != out["kid"]
