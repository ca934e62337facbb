"""The generator as a study condition: the `generator` run param (generate.source and generate.attributes),
its own ratio-0 baseline, and the report's comparison of generators at the same ratio."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dermsynth.study_markdown import generator_comparison, markdown
from dermsynth.study_stats import summarise, tidy
from dermsynth.synthetic_source import generator_condition
from dermsynth.testset_names import TESTSET_MARKERS


def test_the_generator_names_the_source_and_the_traits_asked_for():
    assert generator_condition("models/lora") == "lora"
    assert generator_condition("models/lora/", {}) == "lora"
    assert generator_condition("models/lora", {"skin_tone": "uniform", "site": "match_real"}) == \
        "lora site=match_real skin_tone=uniform"
    assert generator_condition("models/lora", {"skin_tone": {"very_light": 0.5, "dark": 0.5}}) == \
        "lora skin_tone={dark: 0.5, very_light: 0.5}"
    assert generator_condition("data/external/./dermt2im/") == "data/external/dermt2im"


def _runs(gaps: dict[str, list[float]], base: float = 0.20) -> pd.DataFrame:
    """mlflow.search_runs rows: per generator, ratio 0 and ratio 0.5 runs of seeds 1..n with the given
    skin-tone AUROC gaps at ratio 0.5 (ratio 0 at `base`)."""
    rows = []
    for gen, values in gaps.items():
        for seed, v in enumerate(values, 1):
            for ratio, gap in ((0.0, base), (0.5, v)):
                rows.append({"run_id": f"{gen}{ratio}{seed}", "params.model": "m", "params.ratio": str(ratio),
                             "params.seed": str(seed), "params.data_seed": "42", "params.generator": gen,
                             **{f"metrics.isic_{m}": 0.8 for m in TESTSET_MARKERS},
                             "metrics.isic_auc_gap_skin_tone": gap})
    return pd.DataFrame(rows)


def test_two_generators_are_two_conditions_each_against_its_own_baseline():
    runs = _runs({"lora skin_tone=match_real": [0.25, 0.27, 0.26], "lora skin_tone=uniform": [0.15, 0.16, 0.14]})
    s = summarise(tidy(runs))
    g = s[(s.metric == "auc_gap_skin_tone") & (s.ratio == 0.5)].set_index("generator")
    assert g.loc["lora skin_tone=match_real", "delta"] == pytest.approx(0.06)
    assert g.loc["lora skin_tone=uniform", "delta"] == pytest.approx(-0.05)
    # a run from before the generator param existed is the LoRAs' fixed-prompt images
    old = tidy(_runs({"x": [0.3]}).drop(columns="params.generator"))
    assert set(old.generator) == {"lora"}


def test_the_comparison_is_the_paired_difference_on_the_same_replicates():
    match, uniform = [0.25, 0.27, 0.26, 0.30], [0.15, 0.20, 0.14, 0.22]
    df = tidy(_runs({"lora skin_tone=uniform": uniform, "lora skin_tone=match_real": match}))
    c = generator_comparison(df)
    gap = c[c.metric == "auc_gap_skin_tone"].set_index("generator")
    # the reference is the real mix, whatever the order
    assert set(gap.reference) == {"lora skin_tone=match_real"}
    r = gap.loc["lora skin_tone=uniform"]
    diff = np.subtract(uniform, match)
    assert r.delta == pytest.approx(diff.mean()) and r.pairs == 4
    assert r.p == pytest.approx(stats.ttest_rel(uniform, match).pvalue)
    half = stats.t.ppf(0.975, 3) * diff.std(ddof=1) / 2
    assert (r.delta_low, r.delta_high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert gap.loc["lora skin_tone=match_real", "mean"] == pytest.approx(np.mean(match))
    text = markdown(df, summarise(df))
    assert "## Generators compared at the same ratio" in text
    assert f"| m | ISIC | 0.5 | auc_gap_skin_tone | lora skin_tone=uniform | 4 | {np.mean(uniform):.3f} | " \
           f"{diff.mean():+.3f} [" in text
    assert "generator lora skin_tone=uniform" in text  # its own section of levels and effects


def test_the_reference_asks_for_the_real_mix_of_the_most_traits():
    from dermsynth.study_markdown import _reference

    assert _reference(["lora site=match_real skin_tone=uniform", "lora site=match_real skin_tone=match_real"]) == \
        "lora site=match_real skin_tone=match_real"
    assert _reference(["data/external/x", "lora", "lora skin_tone=uniform"]) == "lora"
    assert _reference(["data/external/x", "data/external/y"]) == "data/external/x"


def test_one_generator_makes_no_comparison_section():
    df = tidy(_runs({"lora": [0.25, 0.27, 0.26]}))
    assert generator_comparison(df).empty
    assert "Generators compared" not in markdown(df, summarise(df))
