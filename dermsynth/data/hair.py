"""Hair removal that removes hair, not lesion.

DullRazor (Lee et al., 1997) as commonly re-implemented: a morphological black-hat finds thin dark
structures, a threshold makes them a mask, and inpainting fills the mask from the skin around it.
On real photographs the black-hat answers pigment network, dots, globules and streaks as it answers
hair, and inpainting smears them away. Hairs differ by shape: long and thin. So a pixel of the
black-hat response counts as hair only where the structure is
- thin: no disk of `max_width` fits inside its core (the response above half its local peak; the
  optics blur a hair's response wider than the hair), which blotches, globule clusters and white
  regression areas fail;
- long: Ricci & Perfetti's (2007) line detector of `min_length` (the mean along the best of
  LINE_ANGLES lines, minus the mean of the square around it) stands out, and the square holds
  little of the line's response (ANISOTROPY): a mesh of network segments or a dot looks alike
  along every line.
Pale hairs are found the same way in the white top-hat. The mask then grows a little along the raw
response (hair ends and bends the line missed) and by one pixel (anti-aliased edges).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

LINE_ANGLES = 12  # orientations of the line detector, 15 degrees apart
LINE_STEP = 2  # px between the taps along a line
ANISOTROPY = 0.4  # the square around a hair's line holds at most this share of the line's mean response
MIN_WIDTH_PX = 7  # the width test's disk never narrower: a sharp 3-px hair is no blotch
GROW_STEPS = 2  # geodesic dilations along the raw response after the line detector
LINE_FRACTION = 0.9  # of the hair threshold the line detector must reach (downscaling halves a thin hair)
DETECT_SHORT = 256  # the line detector runs at most at this short side (hairs stay >= 1 px wide there)


def _odd(n: float) -> int:
    return max(3, int(round(n)) | 1)


@functools.lru_cache(maxsize=16)
def _taps(length: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Pixel offsets every LINE_STEP px along a line of `length` px through the centre, LINE_ANGLES
    orientations: the mean over them is the mean along the line, at a fraction of a dense kernel's cost."""
    c = length // 2
    out = []
    for i in range(LINE_ANGLES):
        t = np.pi * i / LINE_ANGLES
        steps = np.arange(-c, c + 1, LINE_STEP)
        out.append(tuple(sorted({(int(round(s * np.cos(t))), int(round(s * np.sin(t)))) for s in steps})))
    return tuple(out)


def line_response(response: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Ricci & Perfetti's (2007) line detector on `response`: (the largest mean along a line of `length`
    px over LINE_ANGLES orientations, the mean of the square around it). Along a hair the line's mean
    is far above the square's; on a mesh of network, a blotch or a dot they are alike."""
    r = response.astype(np.float32)
    h, w = r.shape
    c = length // 2
    pad = cv2.copyMakeBorder(r, c, c, c, c, cv2.BORDER_REFLECT)
    best = np.full_like(r, -np.inf)
    for taps in _taps(length):
        acc = np.zeros_like(r)
        for dx, dy in taps:
            acc += pad[c + dy:c + dy + h, c + dx:c + dx + w]
        np.maximum(best, acc / len(taps), out=best)
    return best, cv2.blur(r, (length, length), borderType=cv2.BORDER_REFLECT)


def _thin_mask(response: np.ndarray, threshold: int, length: int, width: int) -> np.ndarray:
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width))
    candidate = response > threshold
    # width at half maximum: optics blur a dark hair's response wider than the hair, not its core
    peak = cv2.dilate(response, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2))
    core = response > np.maximum(threshold, peak // 2)
    wide = cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_OPEN, disk)
    if wide.any():  # what a disk of `width` fits inside is no hair: it, and its rim, are out
        candidate &= cv2.dilate(wide, np.ones((3, 3), np.uint8)) == 0
    if not candidate.any():
        return candidate
    h, w = response.shape
    k = min(1.0, DETECT_SHORT / min(h, w))  # hairs are long: the detector needs no full resolution
    small = response if k == 1 else cv2.resize(response, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    line, square = line_response(small, _odd(length * k))
    # a hair: the line stands out by LINE_FRACTION x threshold grey levels, and its surroundings hold
    # little of the same (a dense network is dark around every line through it)
    seed = (line - square > LINE_FRACTION * threshold) & (square < ANISOTROPY * line)
    if k != 1:
        seed = cv2.resize(seed.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    seed &= candidate
    if not seed.any():
        return seed
    grown = seed.astype(np.uint8)
    allowed = candidate.astype(np.uint8)
    for _ in range(GROW_STEPS):  # hair ends and bends: a short walk along the raw response
        grown = cv2.dilate(grown, np.ones((3, 3), np.uint8)) & allowed
    return grown.astype(bool) | seed


def hair_mask(img: np.ndarray, kernel_frac: float = 0.04, threshold: int = 10, min_length: float = 0.06,
              pale_threshold: int = 0, max_width: float = 0.015) -> np.ndarray:
    """uint8 mask (255 = hair) of long thin structures: dark ones, and pale ones if `pale_threshold` > 0.

    `kernel_frac`: black-hat element length, `min_length`: shortest straight stretch of a hair,
    `max_width`: widest hair, all as fractions of the short side; thresholds in grey levels of the
    black-hat / top-hat response."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    short = min(gray.shape)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (_odd(kernel_frac * short),) * 2)
    length, width = _odd(min_length * short), max(MIN_WIDTH_PX, _odd(max_width * short))
    dark = cv2.GaussianBlur(cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, cross), (3, 3), 0)
    mask = _thin_mask(dark, threshold, length, width)
    if pale_threshold > 0:
        pale = cv2.GaussianBlur(cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cross), (3, 3), 0)
        mask |= _thin_mask(pale, pale_threshold, length, width)
    return cv2.dilate(mask.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))  # the anti-aliased edges too


def remove_hair(img: np.ndarray, kernel_frac: float = 0.04, threshold: int = 10, radius: int = 3,
                min_length: float = 0.06, pale_threshold: int = 0, max_width: float = 0.015) -> np.ndarray:
    mask = hair_mask(img, kernel_frac, threshold, min_length, pale_threshold, max_width)
    if not mask.any():
        return img
    return cv2.inpaint(img, mask, radius, cv2.INPAINT_TELEA)
