"""Patient-group attributes: anatomic site harmonised across archives, age bands, sex, and skin tone
bands of the Individual Typology Angle (ITA) of the skin around the lesion (measured by
dermsynth.data.preprocess.image_ita). A leaf module: the gates, the metrics and the readers use its
vocabularies without the image code.

ITA = arctan((L* - 50) / b*) in degrees, from CIELAB (Chardon et al., 1991). Bands after Del Bino et
al. (2006): very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30-10, dark < -30.
Unknown or missing values are `unknown`, never dropped.
"""
from __future__ import annotations

import math

UNKNOWN = "unknown"
# (lower bound in degrees, band), highest first: a value on a bound belongs to the band above it
ITA_BANDS: tuple[tuple[float, str], ...] = (
    (55.0, "very_light"), (41.0, "light"), (28.0, "intermediate"), (10.0, "tan"), (-30.0, "brown"),
    (-math.inf, "dark"))
SKIN_TONES = tuple(name for _, name in ITA_BANDS)
SITES = ("head_neck", "upper_extremity", "lower_extremity", "torso", "palms_soles", "oral_genital")
# every archive's own vocabulary (lower case): HAM10000 `localization`, ISIC 2019 / 2024
# `anatom_site_general`, ISIC 2020 `anatom_site_general_challenge`
SITE_MAP = {
    "head/neck": "head_neck", "face": "head_neck", "scalp": "head_neck", "ear": "head_neck", "neck": "head_neck",
    "upper extremity": "upper_extremity", "hand": "upper_extremity",
    "lower extremity": "lower_extremity", "foot": "lower_extremity",
    "torso": "torso", "anterior torso": "torso", "posterior torso": "torso", "lateral torso": "torso",
    "trunk": "torso", "abdomen": "torso", "back": "torso", "chest": "torso",
    "palms/soles": "palms_soles", "acral": "palms_soles",
    "oral/genital": "oral_genital", "genital": "oral_genital",
}
AGE_BANDS: tuple[tuple[float, str], ...] = ((80, "80+"), (60, "60-79"), (40, "40-59"), (18, "18-39"), (0, "0-17"))


def harmonise_site(value: object) -> str:
    """One of SITES, or `unknown` (missing, empty, or a term no archive uses)."""
    key = str(value).strip().lower() if value is not None else ""
    return SITE_MAP.get(key, UNKNOWN)


def age_band(value: object) -> str:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return UNKNOWN
    if not math.isfinite(age) or age < 0:
        return UNKNOWN
    return next(name for low, name in AGE_BANDS if age >= low)


def harmonise_sex(value: object) -> str:
    key = str(value).strip().lower() if value is not None else ""
    return {"male": "male", "m": "male", "female": "female", "f": "female"}.get(key, UNKNOWN)


def skin_tone(ita_degrees: float) -> str:
    if ita_degrees is None or not math.isfinite(ita_degrees):
        return UNKNOWN
    return next(name for low, name in ITA_BANDS if ita_degrees >= low)
