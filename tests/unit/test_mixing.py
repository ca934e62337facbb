"""Hybrid training sets: counts for every ratio and mode."""
import numpy as np
import pandas as pd
import pytest

from dermsynth.classify.mixing import MixConfig, mix


def _real(n_benign=70, n_mal=30):
    lab = ["benign"] * n_benign + ["malignant"] * n_mal
    return pd.DataFrame({"image_id": [f"r{i}" for i in range(len(lab))], "path": [f"r/{i}.png" for i in range(len(lab))],
                         "label": lab})


def _syn(n=200):
    lab = ["benign"] * (n // 2) + ["malignant"] * (n // 2)
    return pd.DataFrame({"image_id": [f"s{i}" for i in range(n)], "path": [f"s/{i}.png" for i in range(n)], "label": lab})


@pytest.mark.parametrize("ratio", [0, 0.25, 0.5, 0.75, 0.9375, 1])
def test_fixed_size_counts(ratio):
    out, c = mix(_real(), _syn(), ratio, MixConfig("fixed_size"), seed=0)
    n_syn = round(ratio * 100)
    assert c["n_train"] == len(out) == 100
    assert c["n_synthetic_benign"] + c["n_synthetic_malignant"] == n_syn
    assert abs(c["n_synthetic_benign"] - c["n_synthetic_malignant"]) <= 1  # synthetic part balanced
    n_real = 100 - n_syn
    assert c["n_real_benign"] + c["n_real_malignant"] == n_real
    if n_real:
        assert abs(c["n_real_malignant"] / n_real - 0.3) <= 1 / n_real + 1e-9  # real class mix kept
    assert c["achieved_ratio"] == pytest.approx(ratio, abs=0.006)
    assert out.image_id.is_unique


@pytest.mark.parametrize("ratio", [0, 0.5, 0.75])
def test_add_mode_keeps_all_real(ratio):
    out, c = mix(_real(), _syn(400), ratio, MixConfig("add"), seed=0)
    assert c["n_real_benign"] == 70 and c["n_real_malignant"] == 30
    assert c["n_synthetic_benign"] + c["n_synthetic_malignant"] == round(ratio * 100 / (1 - ratio))
    assert c["achieved_ratio"] == pytest.approx(ratio, abs=0.01)


def test_add_mode_ratio_one_is_refused():
    with pytest.raises(ValueError, match="fixed_size"):
        mix(_real(), _syn(), 1.0, MixConfig("add"), seed=0)


def test_not_enough_synthetic_is_reported_not_hidden():
    out, c = mix(_real(), _syn(20), 0.75, MixConfig("fixed_size"), seed=0)
    assert c["n_synthetic_benign"] == c["n_synthetic_malignant"] == 10
    assert c["achieved_ratio"] < 0.75


def test_seeded_and_reproducible():
    a, _ = mix(_real(), _syn(), 0.5, MixConfig(), seed=1)
    b, _ = mix(_real(), _syn(), 0.5, MixConfig(), seed=1)
    c, _ = mix(_real(), _syn(), 0.5, MixConfig(), seed=2)
    assert a.equals(b) and not a.equals(c)


def test_negative_downsampling():
    _, c = mix(_real(), _syn(), 0.0, MixConfig("fixed_size", neg_pos_ratio=1.0), seed=0)
    assert c["n_real_benign"] == c["n_real_malignant"] == 30


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_ratio_out_of_range(bad):
    with pytest.raises(ValueError, match="ratio"):
        mix(_real(), _syn(), bad, MixConfig(), seed=0)
