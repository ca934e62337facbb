"""The synthetic-image filter: its scores, its policies, and what the classifiers may draw."""
import numpy as np
import pandas as pd
import pytest

from dermsynth.errors import UserValueError
from dermsynth.filter import FilterConfig, kept_images, knn_ratio, label_probability, score_synthetic, select, summary


def _scores(n_per_class: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    return pd.DataFrame({"image_id": [f"s{i:03d}" for i in range(n)],
                         "label": ["benign"] * n_per_class + ["malignant"] * n_per_class,
                         "blank": False, "near_copy": False,
                         "knn_ratio": rng.uniform(0.5, 3.0, n), "label_prob": rng.uniform(0, 1, n)})


def test_knn_ratio_is_about_one_inside_the_real_cloud_and_large_far_from_it():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (400, 8))
    inside, outside = rng.normal(0, 1, (50, 8)), rng.normal(0, 1, (50, 8)) + 12
    assert 0.7 < np.median(knn_ratio(real, inside, 5)) < 1.4
    assert np.min(knn_ratio(real, outside, 5)) > 3 * np.max(knn_ratio(real, inside, 5))


def test_label_probability_is_high_for_the_intended_class_and_low_for_the_other():
    rng = np.random.default_rng(1)
    real = np.vstack([rng.normal(-2, 1, (100, 4)), rng.normal(2, 1, (100, 4))])
    labels = np.array(["benign"] * 100 + ["malignant"] * 100)
    syn = np.vstack([rng.normal(-2, 1, (20, 4)), rng.normal(2, 1, (20, 4))])
    right = label_probability(real, labels, syn, np.array(["benign"] * 20 + ["malignant"] * 20))
    wrong = label_probability(real, labels, syn, np.array(["malignant"] * 20 + ["benign"] * 20))
    assert right.mean() > 0.9 and wrong.mean() < 0.1
    np.testing.assert_allclose(right + wrong, 1.0, atol=1e-9)
    with pytest.raises(UserValueError, match="no real training image"):
        label_probability(real, labels, syn[:1], np.array(["melanoma"]))


@pytest.mark.parametrize("fraction", [1.0, 0.8, 0.5, 0.25])
def test_keep_fraction_per_class_keeps_the_best_scores(fraction):
    s = _scores(20)
    out = select(s, FilterConfig(policy="combined", keep_fraction=fraction))
    for label, g in out.groupby("label"):
        assert g.kept.sum() == round(fraction * 20)  # per class: the synthetic class mix is unchanged
        if fraction < 1:
            assert g[g.kept].score.min() >= g[~g.kept].score.max()
            assert set(g[~g.kept].reason) == {"low score"}


def test_realism_and_label_policies_rank_by_their_own_score():
    s = _scores(20)
    by_realism = select(s, FilterConfig(policy="realism", keep_fraction=0.5))
    by_label = select(s, FilterConfig(policy="label", keep_fraction=0.5))
    for label, g in by_realism.groupby("label"):
        assert g[g.kept].knn_ratio.max() <= g[~g.kept].knn_ratio.min()  # closer to the real manifold kept
    for label, g in by_label.groupby("label"):
        assert g[g.kept].label_prob.min() >= g[~g.kept].label_prob.max()


def test_flagged_images_are_dropped_first_and_none_keeps_everything():
    s = _scores(10)
    s.loc[0, "blank"] = True
    s.loc[[1, 12], "near_copy"] = True
    out = select(s, FilterConfig(policy="combined", keep_fraction=0.9))
    assert out.loc[0, "reason"] == "blank" and out.loc[1, "reason"] == "near-copy" and out.loc[12, "reason"] == "near-copy"
    assert out.groupby("label").kept.sum().to_dict() == {"benign": 8, "malignant": 9}
    flagged = select(s, FilterConfig(policy="flagged", keep_fraction=0.1))  # keep_fraction is for ranked policies
    assert flagged.kept.sum() == 20 - 3
    everything = select(s, FilterConfig(policy="none"))
    assert everything.kept.all() and (everything.reason == "").all()
    with pytest.raises(UserValueError, match="unknown policy 'best'"):
        select(s, FilterConfig(policy="best"))


def test_score_synthetic_and_kept_images_from_csv(tmp_path):
    rng = np.random.default_rng(2)
    syn = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "label": ["benign", "benign", "malignant", "malignant"],
                        "path": [f"p{i}.png" for i in range(4)]})
    pixels = pd.DataFrame({"path": syn.path, "pixel_std": [30.0, 0.5, 30.0, 30.0], "pixel_mean": [100.0] * 4})
    mem = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "near_copy": [False, False, True, False]})
    real = rng.normal(0, 1, (40, 3))
    labels = np.array(["benign", "malignant"] * 20)
    out = score_synthetic(syn, pixels, mem, real, labels, rng.normal(0, 1, (4, 3)), FilterConfig())
    assert out.set_index("image_id").reason.to_dict() == {"a": "", "b": "blank", "c": "near-copy", "d": ""}
    out.to_csv(tmp_path / "scores.csv", index=False)
    again = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert list(kept_images(syn, again).image_id) == ["a", "d"]
    assert summary(out, FilterConfig())["dropped"] == {"blank": 1, "near-copy": 1}
    with pytest.raises(UserValueError, match="re-run the filter stage"):
        kept_images(syn.iloc[:3], again)
    with pytest.raises(UserValueError, match="re-run the audit stage"):
        score_synthetic(syn, pixels, mem, real, labels, rng.normal(0, 1, (3, 3)), FilterConfig())
