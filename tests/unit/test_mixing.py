"""Hybrid training sets: counts for every ratio and mode."""
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


RATIOS = [0, 0.25, 0.5, 0.75, 0.9375, 1]


@pytest.mark.parametrize("ratio", RATIOS)
def test_fixed_size_counts(ratio):
    out, c = mix(_real(), _syn(), ratio, MixConfig("fixed_size"), seed=0)
    assert c["n_train"] == len(out) == 100
    # match_real (default): the synthetic part has the real class mix, 70/30
    assert c["n_synthetic_benign"] == round(ratio * 70) and c["n_synthetic_malignant"] == round(ratio * 30)
    assert c["n_real_benign"] + c["n_synthetic_benign"] == 70
    assert c["n_real_malignant"] + c["n_synthetic_malignant"] == 30
    assert c["achieved_ratio"] == pytest.approx(ratio, abs=0.011)  # each class rounds on its own: <= 1 image each
    assert out.image_id.is_unique


@pytest.mark.parametrize("mode", ["fixed_size", "add"])
@pytest.mark.parametrize("ratio", RATIOS)
def test_match_real_gives_every_class_the_same_synthetic_share(mode, ratio):
    """The class-mix confound: under match_real no class is more synthetic than another (within one image)."""
    if mode == "add" and ratio == 1:
        return
    real = _real(183, 61)
    _, c = mix(real, _syn(6000), ratio, MixConfig(mode), seed=3)
    for lab, n_lab in (("benign", 183), ("malignant", 61)):
        total = c[f"n_real_{lab}"] + c[f"n_synthetic_{lab}"]
        expected = ratio * total
        assert abs(c[f"n_synthetic_{lab}"] - expected) <= 1, (lab, c)
        assert c[f"synthetic_share_{lab}"] == pytest.approx(c[f"n_synthetic_{lab}"] / total, abs=1e-4)
        if mode == "add":
            assert c[f"n_real_{lab}"] == n_lab


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_balanced_mode_is_the_explicit_50_50_alternative(ratio):
    out, c = mix(_real(), _syn(), ratio, MixConfig("fixed_size", synthetic_class_mix="balanced"), seed=0)
    n_syn = round(ratio * 100)
    assert c["n_synthetic_benign"] + c["n_synthetic_malignant"] == n_syn
    assert abs(c["n_synthetic_benign"] - c["n_synthetic_malignant"]) <= 1
    n_real = 100 - n_syn
    assert abs(c["n_real_malignant"] / n_real - 0.3) <= 1 / n_real + 1e-9  # real class mix kept
    # ...and there the confound is visible: malignant images are more often synthetic
    assert c["synthetic_share_malignant"] > c["synthetic_share_benign"]


def test_unknown_class_mix_is_refused():
    with pytest.raises(ValueError, match="synthetic_class_mix"):
        mix(_real(), _syn(), 0.5, MixConfig(synthetic_class_mix="even"), seed=0)


def test_real_fraction_keeps_whole_groups_and_the_class_mix():
    real = _real(140, 60).assign(group=[f"g{i // 2}" for i in range(200)])  # two images per lesion group
    out, c = mix(real, _syn(), 0.0, MixConfig(real_fraction=0.25), seed=0)
    assert 48 <= len(out) <= 54 and c["n_real_malignant"] in range(14, 18)
    kept = real[real.image_id.isin(out.image_id)]
    assert kept.groupby("group").size().eq(2).all()  # no group split
    with pytest.raises(ValueError, match="real_fraction"):
        mix(real, _syn(), 0.0, MixConfig(real_fraction=0.0), seed=0)


@pytest.mark.parametrize("ratio", [0, 0.5, 0.75])
def test_add_mode_keeps_all_real(ratio):
    out, c = mix(_real(), _syn(800), ratio, MixConfig("add"), seed=0)
    assert c["n_real_benign"] == 70 and c["n_real_malignant"] == 30
    assert c["n_synthetic_benign"] + c["n_synthetic_malignant"] == round(ratio * 100 / (1 - ratio))
    assert c["achieved_ratio"] == pytest.approx(ratio, abs=0.01)


def test_add_mode_ratio_one_is_refused():
    with pytest.raises(ValueError, match="fixed_size"):
        mix(_real(), _syn(), 1.0, MixConfig("add"), seed=0)


def test_not_enough_synthetic_is_reported_not_hidden():
    out, c = mix(_real(), _syn(20), 0.75, MixConfig("fixed_size"), seed=0)
    assert c["n_synthetic_benign"] == c["n_synthetic_malignant"] == 10  # wanted 52 and 22
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


def _grouped(n_benign=280, n_mal=120):
    return _real(n_benign, n_mal).assign(group=[f"g{i // 2}" for i in range(n_benign + n_mal)])


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_held_out_real_fills_the_same_slots_with_real_images_of_the_left_out_groups(ratio):
    """The control arm: the real part is the synthetic arm's, image for image; the slots, count for count,
    hold only real training images whose groups real_fraction left out."""
    real = _grouped()
    arm, c_arm = mix(real, _syn(400), ratio, MixConfig(real_fraction=0.4), seed=5)
    ctrl, c_ctrl = mix(real, _syn(400), ratio, MixConfig(real_fraction=0.4, pool="held_out_real"), seed=5)
    assert c_ctrl == c_arm  # n_synthetic_* count the slots in both arms
    assert set(arm[arm.origin == "real"].image_id) == set(ctrl[ctrl.origin == "real"].image_id)
    slots = ctrl[ctrl.origin == "held_out_real"]
    assert len(slots) == c_arm["n_synthetic_benign"] + c_arm["n_synthetic_malignant"] > 0
    assert set(slots.image_id) <= set(real.image_id) and not (ctrl.origin == "synthetic").any()
    groups = real.set_index("image_id").group
    assert not set(groups[slots.image_id]) & set(groups[ctrl[ctrl.origin == "real"].image_id])  # left-out groups
    for lab in ("benign", "malignant"):
        assert (slots.label == lab).sum() == c_arm[f"n_synthetic_{lab}"]


def test_held_out_real_that_cannot_fill_its_slots_says_how_many_there_are():
    real = _grouped()
    with pytest.raises(ValueError, match=r"the benign slots need \d+ images, the groups that real_fraction=0.8 left "
                                         r"out hold \d+"):
        mix(real, _syn(400), 0.5, MixConfig(real_fraction=0.8, pool="held_out_real"), seed=0)
    with pytest.raises(ValueError, match="pool"):
        mix(real, _syn(), 0.5, MixConfig(pool="real"), seed=0)


def test_held_out_real_needs_a_real_fraction_below_one_at_check_time():
    from dermsynth.params import ParamsError, validate

    with pytest.raises(ParamsError, match="held_out_real"):
        validate({"train": {"mixing": {"pool": "held_out_real"}}})
    validate({"train": {"mixing": {"pool": "held_out_real"}, "real_fraction": 0.25}})


@pytest.mark.parametrize("target, want", [(0.5, 40), (0.4, 17), (0.3, 0), (0.2, 0)])
def test_minority_fills_only_the_rarer_class_up_to_its_target(target, want):
    """70 benign, 30 malignant: (30 + s) / (100 + s) = target; every real image stays."""
    out, c = mix(_real(), _syn(), 0.5, MixConfig(synthetic_class_mix="minority", minority_target=target), seed=0)
    assert c["n_real_benign"] == 70 and c["n_real_malignant"] == 30
    assert c["n_synthetic_benign"] == 0 and c["n_synthetic_malignant"] == want
    if want:
        assert (30 + want) / (100 + want) == pytest.approx(target, abs=0.005)
    none, c0 = mix(_real(), _syn(), 0.0, MixConfig(synthetic_class_mix="minority"), seed=0)  # the real-only control
    assert c0["n_synthetic_malignant"] == 0 and len(none) == 100
