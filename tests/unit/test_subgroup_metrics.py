"""Metrics per patient group: against scikit-learn, small groups, worst group and gap, recomputable."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score

from dermsynth.classify.subgroups import SUBGROUP_METRICS, subgroup_metrics, worst_and_gap
from dermsynth.contracts import SUBGROUP_METRIC_COLUMNS


@pytest.fixture()
def tables():
    rng = np.random.default_rng(0)
    n = 400
    manifest = pd.DataFrame({
        "image_id": [f"ISIC_{i:07d}" for i in range(n)],
        "sex": rng.choice(["male", "female", "unknown"], n, p=[0.45, 0.45, 0.1]),
        "age_band": rng.choice(["18-39", "40-59", "60-79"], n),
        "site": ["palms_soles" if i % 300 < 8 else "torso" if i % 2 else "head_neck" for i in range(n)],  # palms: 8 each
        "skin_tone": rng.choice(["very_light", "light", "brown"], n, p=[0.5, 0.4, 0.1]),
    })
    y = rng.integers(0, 2, n)
    # the classifier is worse on brown skin: its scores carry less signal there
    signal = np.where(manifest.skin_tone == "brown", 0.05, 0.4)
    score = np.clip(0.3 + signal * y + rng.normal(0, 0.2, n), 0, 1)
    pred = pd.DataFrame({"image_id": manifest.image_id, "testset": np.where(np.arange(n) < 300, "isic", "ham10000"),
                         "label": y, "score": score, "pred": (score >= 0.5).astype(int)})
    return pred, manifest


def test_every_group_metric_matches_scikit_learn(tables):
    pred, manifest = tables
    t = subgroup_metrics(pred, manifest, n_boot=50, seed=0)
    assert list(t.columns) == SUBGROUP_METRIC_COLUMNS
    joined = pred.merge(manifest, on="image_id")
    checked = 0
    for r in t[t.metric != ""].itertuples():
        g = joined[(joined.testset == r.testset) & (joined[r.attribute] == r.group)]
        expected = {"auc": roc_auc_score(g.label, g.score), "sensitivity": recall_score(g.label, g.pred),
                    "specificity": recall_score(1 - g.label, 1 - g.pred),
                    "balanced_accuracy": balanced_accuracy_score(g.label, g.pred)}[r.metric]
        assert r.value == pytest.approx(expected, abs=1e-12), r
        assert (r.n, r.n_malignant) == (len(g), int(g.label.sum()))
        assert r.ci_low <= r.value + 1e-9 and r.value - 1e-9 <= r.ci_high and 0 <= r.ci_low and r.ci_high <= 1
        checked += 1
    assert checked >= 4 * 20


def test_a_group_with_fewer_than_five_of_a_class_gets_counts_and_no_metric(tables):
    pred, manifest = tables
    t = subgroup_metrics(pred, manifest, n_boot=20)
    palms = t[(t.attribute == "site") & (t.group == "palms_soles")]
    assert len(palms) == 2  # one row per test set, counts only
    assert (palms.metric == "").all() and palms.value.isna().all() and palms.ci_low.isna().all()
    assert ((palms.n_malignant < 5) | (palms.n - palms.n_malignant < 5)).all()
    measured = t[t.metric != ""]
    assert ((measured.n_malignant >= 5) & (measured.n - measured.n_malignant >= 5)).all()
    assert set(measured.metric) == set(SUBGROUP_METRICS)


def test_worst_group_and_gap_leave_out_unknown_and_find_the_weak_group(tables):
    pred, manifest = tables
    t = subgroup_metrics(pred, manifest, n_boot=20)
    flat = worst_and_gap(t)
    isic = t[(t.testset == "isic") & (t.metric == "auc") & (t.attribute == "skin_tone")].set_index("group").value
    assert flat["isic_auc_worst_skin_tone"] == pytest.approx(isic["brown"]) == pytest.approx(isic.min())
    assert flat["isic_auc_gap_skin_tone"] == pytest.approx(isic.max() - isic.min())
    sex = t[(t.testset == "isic") & (t.metric == "auc") & (t.attribute == "sex") & (t.group != "unknown")].value
    assert flat["isic_auc_gap_sex"] == pytest.approx(sex.max() - sex.min())
    assert "isic_auc_gap_site" in flat  # torso and head_neck measured; palms_soles too small to count


def test_the_table_is_recomputable_from_predictions_and_manifest_files(tables, tmp_path):
    pred, manifest = tables
    pred.to_csv(tmp_path / "pred.csv", index=False)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    again = subgroup_metrics(pd.read_csv(tmp_path / "pred.csv", dtype={"image_id": str}),
                             pd.read_csv(tmp_path / "manifest.csv", dtype={"image_id": str}, keep_default_na=False),
                             n_boot=30, seed=5)
    pd.testing.assert_frame_equal(again, subgroup_metrics(pred, manifest, n_boot=30, seed=5))


def test_missing_attribute_values_are_the_unknown_group():
    manifest = pd.DataFrame({"image_id": ["a", "b"], "sex": ["", "male"]})
    pred = pd.DataFrame({"image_id": ["a", "b"], "testset": "isic", "label": [0, 1], "score": [0.2, 0.8], "pred": [0, 1]})
    t = subgroup_metrics(pred, manifest, n_boot=5, attributes=("sex",))
    assert sorted(t.group) == ["male", "unknown"] and (t.metric == "").all()
