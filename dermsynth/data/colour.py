"""Colour: CIELAB skin tone (Individual Typology Angle) and colour constancy. A leaf module: numpy and
OpenCV only, so the demo's ground truth and the preprocessing measure skin tone with the same code.

ITA = arctan((L* - 50) / b*) in degrees (Chardon et al., 1991). Dermoscopy photographs carry the
camera's colour cast (auto white balance, LED spectra): taken straight into CIELAB, skin comes out
with b* <= 0 and ITA of 90 degrees or more, which no skin has. Colour constancy first:

- `shades_of_gray`: the illuminant is the Minkowski p-mean (p = 6) of each channel over the field of
  view (Finlayson & Trezzi, 2004; the usual ISIC choice, Barata et al., 2015) and becomes grey. It
  makes images alike for a classifier, but it greys the skin too (the p-mean of a dermoscopy field
  is skin), so the b* that ITA needs goes to about 0.
- `skin_gamut`: gamut-mapping constancy (Forsyth, 1990) with the gamut of human skin: the smallest
  von Kries correction that brings the skin's median colour inside the chromaticities skin has
  (CIELAB hue 30-75 degrees, chroma 10-40; Xiao et al., 2017; Del Bino & Bernerd, 2013). A skin
  colour that is already possible is left alone, so true differences in tone survive; a blue or
  grey cast is moved to the nearest skin colour.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

COLOR_CONSTANCY = ("skin_gamut", "shades_of_gray", "none")
# the chromaticities of skin (CIELAB hue angle in degrees, chroma): every skin tone lies inside
SKIN_HUE = (30.0, 75.0)
SKIN_CHROMA = (12.0, 40.0)


def ita_of_lab(lightness: float, b: float) -> float:
    """ITA in degrees of a CIELAB colour (L* in 0-100, b* in CIELAB units)."""
    return math.degrees(math.atan2(lightness - 50.0, b))  # = arctan((L* - 50) / b*) for b* > 0, defined at b* = 0


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


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0, cv2.COLOR_RGB2LAB).reshape(3)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(lab, np.float32).reshape(1, 1, 3), cv2.COLOR_LAB2RGB).reshape(3) * 255.0


def shades_of_gray_gains(img: np.ndarray, mask: np.ndarray, p: float = 6.0) -> np.ndarray:
    """Per-channel gains (3,) that make the shades-of-gray illuminant estimate of `mask`'s pixels grey,
    its brightness kept."""
    px = img[mask].astype(np.float64) / 255.0
    if len(px) == 0:
        return np.ones(3, np.float32)
    est = np.maximum(np.power(np.mean(np.power(px, p), axis=0), 1.0 / p), 1e-3)
    return (est.mean() / est).astype(np.float32)


def skin_gamut_gains(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel gains (3,) that move the median colour of the skin pixels `mask` to the nearest
    chromaticity inside SKIN_HUE x SKIN_CHROMA at its own L*; ones when it is inside already."""
    px = img[mask]
    if len(px) == 0:
        return np.ones(3, np.float32)
    median = np.median(px.reshape(-1, 3), axis=0).astype(np.float32)
    lightness, a, b = _lab(median)
    hue = math.degrees(math.atan2(b, a))
    chroma = math.hypot(a, b)
    # the nearest point of the gamut, hue and chroma clamped separately (a sector of an annulus)
    hue_t = float(np.clip(hue if hue > -105 else hue + 360, *SKIN_HUE))
    chroma_t = float(np.clip(chroma, *SKIN_CHROMA))
    if hue_t == hue and chroma_t == chroma:
        return np.ones(3, np.float32)
    target = _rgb([lightness, chroma_t * math.cos(math.radians(hue_t)), chroma_t * math.sin(math.radians(hue_t))])
    return (np.maximum(target, 1.0) / np.maximum(median, 1.0)).astype(np.float32)


def apply_gains(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def gains(img: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Colour-constancy gains of `method` (one of COLOR_CONSTANCY), estimated over `mask`."""
    if method == "none":
        return np.ones(3, np.float32)
    if method == "shades_of_gray":
        return shades_of_gray_gains(img, mask)
    if method == "skin_gamut":
        return skin_gamut_gains(img, mask)
    raise ValueError(f"unknown colour constancy {method!r}; known: {COLOR_CONSTANCY}")
