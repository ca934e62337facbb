"""Patient-group attributes: anatomic site harmonised across archives, age bands, sex, and skin tone
measured as the Individual Typology Angle (ITA) of the skin around the lesion.

ITA = arctan((L* - 50) / b*) in degrees, from CIELAB (Chardon et al., 1991). Bands after Del Bino et
al. (2006): very light > 55, light 41-55, intermediate 28-41, tan 10-28, brown -30-10, dark < -30.
Unknown or missing values are `unknown`, never dropped.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from dermsynth.data.preprocess import hair_mask, lesion_box, remove_hair

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


def ita_of_lab(lightness: float, b: float) -> float:
    """ITA in degrees of a CIELAB colour (L* in 0-100, b* in CIELAB units)."""
    return math.degrees(math.atan2(lightness - 50.0, b))  # = arctan((L* - 50) / b*) for b* > 0, defined at b* = 0


def skin_mask(img: np.ndarray, grow: float = 0.25) -> np.ndarray:
    """Pixels of skin: outside the lesion's box (grown by `grow` of its size per side), not hair, not the
    black vignette. `grow=0` for lesion-centred crops, where little skin shows around the box."""
    h, w = img.shape[:2]
    mask = np.ones((h, w), bool)
    box = lesion_box(remove_hair(img))  # a hair across the lesion would stretch its box over the image
    if box is not None:
        x0, y0, x1, y1 = box
        gx, gy = int((x1 - x0) * grow), int((y1 - y0) * grow)
        mask[max(y0 - gy, 0):y1 + gy, max(x0 - gx, 0):x1 + gx] = False
    mask &= hair_mask(img, 0.04, 10) == 0
    mask &= cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) > 25
    return mask


def ita(img: np.ndarray, min_pixels: int = 50, grow: float = 0.25) -> float:
    """ITA (degrees) of the skin around the lesion of an RGB uint8 image; NaN when too little skin shows.

    Medians of L* and b* over the skin pixels: robust to leftover hair, freckles and reflections."""
    mask = skin_mask(img, grow)
    if mask.sum() < min_pixels:
        return math.nan
    return ita_of_pixels(img, mask)


def ita_of_pixels(img: np.ndarray, mask: np.ndarray, trim_dark_tail: bool = True) -> float:
    """ITA (degrees) from the medians of L* and b* over the `mask` pixels of an RGB uint8 image.

    `trim_dark_tail`: what a mask estimated from the image keeps of the lesion's halo, hair and the
    dermoscope's dark rim is darker than skin, never lighter, so the dark tail of L* (beyond 2 robust
    standard deviations) goes before the medians. A known mask (the demo's ground truth) needs no trim."""
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # float input: L* 0-100, b* in units
    lightness, b = lab[..., 0][mask], lab[..., 2][mask]
    if trim_dark_tail:
        mid = np.median(lightness)
        keep = lightness >= mid - 2.0 * 1.4826 * np.median(np.abs(lightness - mid))
        lightness, b = lightness[keep], b[keep]
    return ita_of_lab(float(np.median(lightness)), float(np.median(b)))
