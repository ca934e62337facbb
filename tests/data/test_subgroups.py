"""Subgroup attributes: ITA on images of known CIELAB colour, the Del Bino bands, sites of every archive."""
import math

import cv2
import numpy as np
import pytest

from dermsynth.data.colour import ita_of_lab
from dermsynth.data.preprocess import image_ita as ita
from dermsynth.data.subgroups import SITES, UNKNOWN, age_band, harmonise_sex, harmonise_site, skin_tone


def _from_lab(lightness: float, a: float, b: float, size=(120, 160)) -> np.ndarray:
    lab = np.empty((*size, 3), np.float32)
    lab[...] = (lightness, a, b)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("lab", [(80, 5, 12), (65, 12, 18), (55, 14, 22), (45, 15, 20), (30, 10, 15)])
def test_ita_of_a_uniform_skin_colour(lab):
    expected = math.degrees(math.atan((lab[0] - 50) / lab[2]))
    assert ita(_from_lab(*lab)) == pytest.approx(expected, abs=1.5)  # 8-bit rounding of the colour only


def test_ita_ignores_the_lesion_and_the_hair():
    img = _from_lab(70, 8, 16)
    cv2.ellipse(img, (80, 60), (30, 22), 0, 0, 360, (70, 40, 30), -1)  # a dark brown lesion
    cv2.line(img, (0, 10), (159, 110), (20, 15, 10), 2)  # a hair across everything
    assert ita(img) == pytest.approx(math.degrees(math.atan(20 / 16)), abs=2.0)


def test_ita_is_nan_when_no_skin_shows():
    assert math.isnan(ita(np.zeros((64, 64, 3), np.uint8)))


def test_del_bino_bands_and_their_bounds():
    assert [skin_tone(x) for x in (70, 55, 54.9, 41, 30, 28, 20, 10, 0, -30, -30.1, -60)] == [
        "very_light", "very_light", "light", "light", "intermediate", "intermediate", "tan", "tan", "brown",
        "brown", "dark", "dark"]
    assert skin_tone(math.nan) == UNKNOWN
    assert ita_of_lab(50, 0) == 0.0 and ita_of_lab(70, 20) == pytest.approx(45.0)


@pytest.mark.parametrize("value,site", [
    # HAM10000 localization
    ("scalp", "head_neck"), ("ear", "head_neck"), ("face", "head_neck"), ("neck", "head_neck"),
    ("back", "torso"), ("trunk", "torso"), ("abdomen", "torso"), ("chest", "torso"),
    ("upper extremity", "upper_extremity"), ("hand", "upper_extremity"), ("lower extremity", "lower_extremity"),
    ("foot", "lower_extremity"), ("acral", "palms_soles"), ("genital", "oral_genital"), ("unknown", UNKNOWN),
    # ISIC 2019 / 2024 anatom_site_general
    ("anterior torso", "torso"), ("posterior torso", "torso"), ("lateral torso", "torso"), ("head/neck", "head_neck"),
    ("palms/soles", "palms_soles"), ("oral/genital", "oral_genital"), ("", UNKNOWN),
    # ISIC 2020 anatom_site_general_challenge
    ("torso", "torso"), ("Upper Extremity", "upper_extremity"), (None, UNKNOWN), (float("nan"), UNKNOWN),
])
def test_sites_of_every_archive(value, site):
    assert harmonise_site(value) == site and (site in SITES or site == UNKNOWN)


def test_age_and_sex():
    assert [age_band(x) for x in (5, 17.9, 18, 45, "60", 79, 85, "", None, -1, float("nan"))] == [
        "0-17", "0-17", "18-39", "40-59", "60-79", "60-79", "80+", UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]
    assert [harmonise_sex(x) for x in ("male", "Female", "", None, "unknown")] == [
        "male", "female", UNKNOWN, UNKNOWN, UNKNOWN]


# --- the attributes through ingest and preprocess, on the demo phantoms with known skin tones --------------

def test_every_archive_reader_fills_the_harmonised_attributes(demo_raw_session):
    import pandas as pd

    from dermsynth.data.ingest import ingest
    from dermsynth.quality.suites import VOCABULARY

    m = ingest(demo_raw_session, min_size=48, workers=1).manifest
    for attr in ("sex", "age_band", "site"):
        assert set(m[attr]) <= set(VOCABULARY[attr]), attr
        for source, g in m.groupby("source"):
            assert (g[attr] != UNKNOWN).mean() > 0.7, (attr, source)  # every reader reads its own column names
    ham = pd.read_csv(demo_raw_session / "ham10000" / "HAM10000_metadata.csv").drop_duplicates("image_id")
    got = m[m.source == "ham10000"].merge(ham, on="image_id")
    assert len(got) > 10
    assert (got.site == got.localization.map(harmonise_site)).all() and (got.sex_x == got.sex_y).all()
    assert (got.age_band == got.age.map(age_band)).all()


def test_unknown_attributes_stay_unknown_and_no_row_is_dropped(demo_raw, tmp_path):
    import pandas as pd

    from dermsynth.data.ingest import ingest

    before = ingest(demo_raw, min_size=48, workers=1).manifest
    (demo_raw / "isic2019" / "ISIC_2019_Training_Metadata.csv").unlink()  # optional file: lesions, attributes gone
    meta = pd.read_csv(demo_raw / "isic2020" / "train.csv")
    meta.drop(columns=["sex"]).assign(age_approx="").to_csv(demo_raw / "isic2020" / "train.csv", index=False)
    after = ingest(demo_raw, min_size=48, workers=1).manifest
    assert len(after) == len(before)
    isic2019 = after[after.source == "isic2019"]
    assert (isic2019[["sex", "age_band", "site"]] == UNKNOWN).all().all()
    isic2020 = after[after.source == "isic2020"]
    assert (isic2020.sex == UNKNOWN).all() and (isic2020.age_band == UNKNOWN).all() and (isic2020.site != UNKNOWN).all()


def test_ita_agrees_with_the_phantoms_skin_tone_in_90_percent_of_images(prepared_session, demo_raw_session):
    """The demo's ground truth: the band of the skin each phantom was photographed with."""
    import pandas as pd

    from dermsynth.demo.layouts import TRUTH_FILE

    _, manifest = prepared_session
    truth = pd.read_csv(demo_raw_session / TRUTH_FILE)
    both = manifest.merge(truth, on=["source", "image_id"], suffixes=("", "_true"))
    assert len(both) >= 0.9 * len(manifest)
    agree = (both.skin_tone == both.skin_tone_true).mean()
    assert agree >= 0.90, both.groupby(["skin_tone_true", "skin_tone"]).size()
    assert both.skin_tone_true.nunique() >= 4  # a spread of tones, not one


def test_the_painted_skin_colour_has_the_requested_ita():
    from dermsynth.demo.phantom import skin_of_ita

    for target in (62.0, 48.0, 35.0, 20.0, -5.0, -40.0):
        rgb = np.array(skin_of_ita(target), np.uint8)[None, None, :]
        assert ita_of_lab(*_lab_lb(rgb)) == pytest.approx(target, abs=1.5)


def _lab_lb(rgb: np.ndarray) -> tuple[float, float]:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0, 0]
    return float(lab[0]), float(lab[2])


def test_subgroup_mix_expectation_fails_on_a_test_set_skewed_by_sex(prepared_session):
    import great_expectations.expectations as gxe

    from dermsynth.quality.gate import Table, validate
    from dermsynth.quality.suites import QualityConfig, subgroup_mix

    _, manifest = prepared_session
    mix = subgroup_mix(manifest, min_rows=5)
    assert {"attribute", "group", "share_train", "share_test", "max_shift", "n_malignant"} <= set(mix.columns)
    for attr, g in mix.groupby("attribute"):
        for s in ("train", "val", "test"):
            assert g[f"share_{s}"].sum() == pytest.approx(1.0, abs=1e-3), (attr, s)
    skewed = manifest.copy()
    skewed.loc[skewed.split == "test", "sex"] = "female"  # every test patient female
    shifted = subgroup_mix(skewed, min_rows=5)
    assert shifted.set_index(["attribute", "group"]).max_shift[("sex", "female")] > 0.3
    exp = gxe.ExpectColumnValuesToBeBetween(column="max_shift", max_value=QualityConfig().max_subgroup_shift)
    assert not validate("x", [Table("subgroup_mix", shifted, [exp])])["success"]
    # a group below min_rows in some split is reported, not gated
    assert subgroup_mix(skewed, min_rows=10_000).max_shift.isna().all()
