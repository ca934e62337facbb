"""Image preprocessing: field of view, hair removal, lesion segmentation and centring, skin tone, resize.

One photograph goes through, at the working resolution:
1. the dermoscope's field of view (dermsynth.data.fov): rim, black bars and dark vignette corners out;
2. hair removal (dermsynth.data.hair): long thin dark and pale structures, inpainted;
3. lesion segmentation inside the field (dermsynth.data.lesion), with a confidence;
4. a square crop around the lesion (`centring: lesion`), placed to keep rim out of it, or, when the
   segmentation is not confident, the largest square of the field (`centring: fallback`) rather
   than a crop of plain skin; what rim the crop still holds is filled from the surrounding skin;
5. skin tone (ITA) of the skin inside the field, away from lesion, hair and rim, after colour constancy;
6. resize to `size`, recording the crop's side in raw pixels and the upscaling factor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dermsynth.data import colour
from dermsynth.data.fov import field_of_view, fill_outside, shrink
from dermsynth.data.hair import hair_mask
from dermsynth.data.lesion import Lesion, segment
from dermsynth.params import Prepare, defaults_from

ITA_SHORT = 128  # skin tone is a colour median: 128 px hold enough skin
MIN_SKIN_PIXELS = 50


@dataclass(frozen=True)
@defaults_from(Prepare)
class PrepConfig:
    size: int
    hair_removal: bool
    hair_kernel: float
    hair_threshold: int
    hair_min_length: float
    pale_hair_threshold: int
    inpaint_radius: int
    center: bool
    margin: float
    min_confidence: float
    color_constancy: str
    color_constancy_images: bool
    max_upscale: float
    # Work at `work_scale` x `size` on the short side (larger images are decoded at reduced scale and
    # shrunk to it first); 0 = at the raw resolution. Hairs stay a few pixels wide there, and the crop
    # (at least a quarter of the short side) still has size/2 px or more.
    work_scale: int

    @property
    def working_short(self) -> int:
        """Short side of the working image in px (0: the raw resolution)."""
        return self.work_scale * self.size if self.work_scale > 0 else 0


# `prepare` keys that steer the prepared set (splits, duplicates, processes), not how one image is prepared
SET_KEYS = ("val_fraction", "test_fraction", "phash_distance", "workers")


def prep_config(prepare: dict) -> PrepConfig:
    """The per-image settings of a `prepare` params block."""
    from dermsynth.config import from_block

    return from_block(PrepConfig, {k: v for k, v in prepare.items() if k not in SET_KEYS})


@dataclass(frozen=True)
class Prepared:
    """One prepared image and what its preprocessing found."""

    image: np.ndarray  # size x size RGB uint8
    centring: str  # lesion | fallback
    confidence: float  # of the lesion segmentation, 0..1
    crop_px: int  # side of the crop in raw pixels
    upscale: float  # output side / crop side in raw pixels (> 1: enlarged)
    rim_filled: float  # share of the output filled from skin because it lay outside the field of view
    ita: float  # degrees; NaN when too little skin shows
    box: tuple[int, int, int, int] | None  # the crop (x0, y0, x1, y1) in working pixels
    lesion: Lesion  # the segmentation, at the working resolution
    fov: np.ndarray  # bool, the dermoscope's field of view, at the working resolution
    hair: np.ndarray | None  # uint8 hair mask (255 = hair) at the working resolution; None without hair removal


def resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def to_working(img: np.ndarray, short: int) -> np.ndarray:
    """`img` shrunk (area-averaged) to `short` px on its short side; unchanged if already no larger."""
    return shrink(img, short) if short else img


def _outside_count(integral: np.ndarray, x: int, y: int, side: int) -> int:
    return int(integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x])


def lesion_crop(fov: np.ndarray, box: tuple[int, int, int, int], margin: float,
                min_side: int = 0) -> tuple[int, int, int]:
    """(left, top, side) of a square around `box` with `margin`, inside the image, placed (shifted by
    up to 15 % of its side, then shrunk towards the box) so that it holds as little rim as it can."""
    h, w = fov.shape
    short = min(h, w)
    x0, y0, x1, y1 = box
    side0 = int(np.clip(max(x1 - x0, y1 - y0) * (1 + 2 * margin), max(0.25 * short, min_side), short))
    integral = cv2.integral((~fov).astype(np.uint8))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    best = None
    tight = max(x1 - x0, y1 - y0, min_side, 8)
    for side in sorted({side0, int(side0 * 0.9), int(side0 * 0.8), max(min(side0, tight * 1.1), 8)}, reverse=True):
        side = int(min(max(side, 8), short))
        for fx in (0.0, -0.08, 0.08, -0.15, 0.15):
            for fy in (0.0, -0.08, 0.08, -0.15, 0.15):
                left = min(max(round(cx - side / 2 + fx * side), 0), w - side)
                top = min(max(round(cy - side / 2 + fy * side), 0), h - side)
                rim = _outside_count(integral, left, top, side) / side**2
                # rim above 1 % costs more than anything; then prefer larger and more centred crops
                cost = (rim > 0.01) * (1 + rim) + 0.1 * (abs(fx) + abs(fy)) + 0.2 * (1 - side / side0)
                if best is None or cost < best[0]:
                    best = (cost, left, top, side)
    return best[1], best[2], best[3]


def field_crop(fov: np.ndarray, min_side: int = 0) -> tuple[int, int, int]:
    """(left, top, side) of the largest square around the field's centre with at most 1 % rim."""
    h, w = fov.shape
    ys, xs = np.nonzero(fov)
    cx, cy = (xs.mean(), ys.mean()) if len(xs) else (w / 2, h / 2)
    integral = cv2.integral((~fov).astype(np.uint8))
    short = min(h, w)
    side = short
    for side in np.linspace(short, max(0.4 * short, min_side, 8), 13).astype(int):
        left = int(np.clip(round(cx - side / 2), 0, w - side))
        top = int(np.clip(round(cy - side / 2), 0, h - side))
        if _outside_count(integral, left, top, side) <= 0.01 * side**2:
            return left, top, int(side)
    return left, top, int(side)


def skin_ita(img: np.ndarray, fov: np.ndarray, lesion: np.ndarray, hair: np.ndarray | None, method: str,
             grow: float = 0.1, min_pixels: int = MIN_SKIN_PIXELS) -> float:
    """ITA (degrees) of the skin: inside the field, outside the lesion grown by `grow` of its size (the demo's
    ground truth counts all skin outside the lesion: 0.1 agrees with it best, 0.5 reads 3-6 degrees dark), off
    hair and glare, after colour constancy `method`; NaN when fewer than `min_pixels` remain."""
    small = shrink(img, ITA_SHORT)
    sh, sw = small.shape[:2]
    near = lambda m: cv2.resize(m.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST) > 0  # noqa: E731
    # well inside the field: the rim's soft shadow is darker than skin
    skin = cv2.erode(near(fov).astype(np.uint8), np.ones((11, 11), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
    les = near(lesion)
    if les.any():
        ys, xs = np.nonzero(les)
        g = max(1, int(grow * max(np.ptp(xs), np.ptp(ys)) + 2))
        skin &= ~(cv2.dilate(les.astype(np.uint8), np.ones((2 * g + 1, 2 * g + 1), np.uint8)) > 0)
    if hair is not None:
        skin &= ~near(hair)
    v = small.max(axis=2)
    skin &= (v > 25) & ~((v > 245) & (small.min(axis=2) > 230))  # no rim residue, no specular glare
    if skin.sum() < min_pixels:
        return math.nan
    corrected = colour.apply_gains(small, colour.gains(small, skin, method))
    return colour.ita_of_pixels(corrected, skin)


def find_hair(img: np.ndarray, cfg: PrepConfig) -> np.ndarray:
    """The hair mask (uint8, 255 = hair) of `img` with `cfg`'s hair settings."""
    return hair_mask(img, cfg.hair_kernel, cfg.hair_threshold, cfg.hair_min_length, cfg.pale_hair_threshold)


def prepare_image(img: np.ndarray, cfg: PrepConfig, raw_short: int = 0) -> Prepared:
    """Raw RGB image -> a `cfg.size` square and its findings, all work done at the working resolution.

    `raw_short`: the short side of the file as stored (the image may come decoded at reduced scale),
    for the crop's side in raw pixels; 0 = the image's own."""
    img = to_working(img, cfg.working_short)
    h, w = img.shape[:2]
    scale = (raw_short or min(h, w)) / min(h, w)  # raw px per working px
    fov = field_of_view(img)
    hair = None
    if cfg.hair_removal:
        hair = find_hair(img, cfg)
        if hair.any():
            img = cv2.inpaint(img, hair, cfg.inpaint_radius, cv2.INPAINT_TELEA)
    les = segment(img, fov)
    min_side = int(math.ceil(cfg.size / cfg.max_upscale / scale)) if cfg.max_upscale > 0 else 0
    if cfg.center and les.box is not None and les.confidence >= cfg.min_confidence:
        left, top, side = lesion_crop(fov, les.box, cfg.margin, min_side)
        centring = "lesion"
    else:
        left, top, side = field_crop(fov, min_side)
        centring = "fallback"
    ita = skin_ita(img, fov, les.mask, hair, cfg.color_constancy)
    if cfg.color_constancy_images:
        img = colour.apply_gains(img, colour.gains(img, fov & ~les.mask, cfg.color_constancy))
    crop, inside = img[top:top + side, left:left + side], fov[top:top + side, left:left + side]
    out = resize(fill_outside(crop, inside), cfg.size)
    crop_px = int(round(side * scale))
    return Prepared(image=out, centring=centring, confidence=round(les.confidence, 3), crop_px=crop_px,
                    upscale=round(cfg.size / crop_px, 3), rim_filled=round(1 - float(inside.mean()), 4),
                    ita=ita, box=(left, top, left + side, top + side), lesion=les, fov=fov, hair=hair)


def preprocess_image(img: np.ndarray, cfg: PrepConfig) -> np.ndarray:
    """Raw RGB image -> `cfg.size` square RGB image (prepare_image's picture alone)."""
    return prepare_image(img, cfg).image


def image_ita(img: np.ndarray, min_pixels: int = MIN_SKIN_PIXELS, grow: float = 0.1,
              method: str = PrepConfig.color_constancy) -> float:
    """ITA (degrees) of the skin around the lesion of an RGB uint8 image (field of view, hair and lesion
    found here); NaN when too little skin shows. `grow=0` for lesion-centred crops, where little skin
    shows around the lesion. Medians of L* and b*: robust to leftover hair, freckles and reflections."""
    fov = field_of_view(img)
    cfg = PrepConfig()
    hair = find_hair(img, cfg)
    clean = cv2.inpaint(img, hair, cfg.inpaint_radius, cv2.INPAINT_TELEA) if hair.any() else img
    lesion = segment(clean, fov)
    return skin_ita(clean, fov, lesion.mask, hair, method, grow, min_pixels)
