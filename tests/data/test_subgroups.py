"""Subgroup attributes: ITA on images of known CIELAB colour, the Del Bino bands, sites of every archive."""
import math

import cv2
import numpy as np
import pytest

from dermsynth.data.subgroups import (SITES, UNKNOWN, age_band, harmonise_sex, harmonise_site, ita, ita_of_lab,
                                      skin_tone)


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
