"""Power of the ratio study's paired tests, and synthetic efficiency against the held-out-real control arm,
on hand-made run tables whose answers are known."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dermsynth.arms import detectable_effect, paired_power, replicates_needed, synthetic_efficiency


# 2 pairs (one degree of freedom) is where scipy's noncentral t gives NaN and the integral takes over
@pytest.mark.parametrize("n, sd", [(2, 0.02), (3, 0.02), (5, 0.01), (10, 0.03)])
def test_the_detectable_effect_is_found_with_80_percent_power_in_simulation(n, sd):
    """Simulated paired differences with the detectable effect as their true mean: the paired t-test at
    alpha 0.05 rejects in 80 % of studies (40,000 simulated, so within about +-0.6 points)."""
    mde = detectable_effect(sd, n)
    rng = np.random.default_rng(n)
    diffs = rng.normal(mde, sd, size=(40_000, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.008)
    assert paired_power(mde, sd, n) == pytest.approx(0.8, abs=1e-6)


def test_power_grows_with_replicates_and_the_normal_approximation_is_optimistic():
    sd = 0.02
    assert detectable_effect(sd, 3) > detectable_effect(sd, 5) > detectable_effect(sd, 20)
    normal = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sd / math.sqrt(3)
    assert detectable_effect(sd, 3) > 1.5 * normal  # at 3 pairs the t-distribution's tails matter
    n = replicates_needed(0.02, 0.03)
    assert paired_power(0.02, 0.03, n) >= 0.8 > paired_power(0.02, 0.03, n - 1)
    assert math.isnan(detectable_effect(0.0, 5)) and math.isnan(detectable_effect(0.02, 1))


def _runs(arms: dict, seeds=(1, 2, 3, 4, 5), baseline=0.70, noise=None) -> pd.DataFrame:
    """tidy() rows: ratio 0 once per seed, then each arm's ratio 0.5 at baseline + effect (+ per-seed noise)."""
    rows = []
    noise = noise or {}
    for s in seeds:
        base = {"model": "m", "testset": "isic", "metric": "auc", "synthetic_class_mix": "match_real",
                "real_fraction": 0.25, "filter": "combined 1", "seed": s, "data_seed": "42"}
        rows.append(base | {"ratio": 0.0, "pool": "synthetic", "value": baseline, "run_id": f"b{s}"})
        for pool, effect in arms.items():
            v = baseline + effect + noise.get(pool, {}).get(s, 0.0)
            rows.append(base | {"ratio": 0.5, "pool": pool, "value": v, "run_id": f"{pool}{s}"})
    return pd.DataFrame(rows)


def test_efficiency_is_the_ratio_of_the_two_arms_effects_with_an_interval():
    jitter = {"synthetic": {1: 0.004, 2: -0.004}, "held_out_real": {3: 0.006, 4: -0.006}}
    eff = synthetic_efficiency(_runs({"synthetic": 0.01, "held_out_real": 0.04}, noise=jitter))
    assert len(eff) == 1
    r = eff.iloc[0]
    assert r.pairs == 5 and r.effect_synthetic == pytest.approx(0.01) and r.effect_control == pytest.approx(0.04)
    assert r.efficiency == pytest.approx(0.25)
    assert r.efficiency_low < 0.25 < r.efficiency_high and r.control_sees_an_effect


def test_a_control_arm_without_an_effect_says_the_study_cannot_see():
    noise = {"held_out_real": {1: 0.03, 2: -0.03, 3: 0.02, 4: -0.02, 5: 0.0}}
    eff = synthetic_efficiency(_runs({"synthetic": 0.01, "held_out_real": 0.001}, noise=noise))
    assert not eff.iloc[0].control_sees_an_effect


def test_no_control_arm_no_efficiency_and_too_few_pairs_no_interval():
    assert synthetic_efficiency(_runs({"synthetic": 0.01})).empty
    two = synthetic_efficiency(_runs({"synthetic": 0.01, "held_out_real": 0.02}, seeds=(1, 2)))
    assert two.iloc[0].efficiency == pytest.approx(0.5) and math.isnan(two.iloc[0].efficiency_low)


def test_paired_sd_pools_the_cells_and_the_power_command_plans_from_it(tmp_path, capsys):
    from dermsynth.arms import paired_sd, plan
    from dermsynth.cli import main

    noise = {"synthetic": {1: 0.01, 2: -0.01, 3: 0.03, 4: -0.03, 5: 0.0}}
    df = _runs({"synthetic": 0.02}, noise=noise)
    sds = paired_sd(df, "auc")
    assert len(sds) == 1 and sds.iloc[0].pairs == 5
    assert sds.iloc[0].sd == pytest.approx(np.std([0.01, -0.01, 0.03, -0.03, 0.0], ddof=1))
    p = plan(sds.iloc[0].sd, 0.02, 5, scale=0.5)
    assert p["sd"] == pytest.approx(sds.iloc[0].sd / 2) and p["detectable"] == pytest.approx(detectable_effect(p["sd"], 5))
    assert paired_power(0.02, p["sd"], p["replicates_needed"]) >= 0.8
    runs = tmp_path / "runs.csv"
    df.to_csv(runs, index=False)
    main(["power", "--runs", str(runs), "--metric", "auc", "--effect", "0.02", "--replicates", "5"])
    out = capsys.readouterr().out
    assert "ISIC" in out and f"+-{detectable_effect(sds.iloc[0].sd, 5):.3f}" in out
    with pytest.raises(SystemExit):
        main(["power", "--runs", str(tmp_path / "none.csv")])
