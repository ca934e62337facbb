"""Image preprocessing: DullRazor hair removal, lesion centring, resizing.

DullRazor (Lee et al., 1997), as commonly re-implemented with OpenCV: a morphological black-hat
with a thin cross element finds dark thin structures (hairs), a threshold turns them into a mask,
and inpainting fills the mask from the surrounding skin.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PrepConfig:
    size: int = 64
    hair_removal: bool = True
    hair_kernel: float = 0.04  # black-hat element length as a fraction of the short side (17 px at 450)
    hair_threshold: int = 10  # black-hat response (grey levels) above which a pixel is hair
    inpaint_radius: int = 3
    center: bool = True
    margin: float = 0.25  # space around the lesion's bounding box, per side, as a fraction of it
    # Work at `work_scale` x `size` on the short side (larger images are decoded at reduced scale and
    # shrunk to it first); 0 = at the raw resolution. Hairs stay a few pixels wide there, and the crop
    # (at least a quarter of the short side) still has size/2 px or more.
    work_scale: int = 4

    @property
    def working_short(self) -> int:
        """Short side of the working image in px (0: the raw resolution)."""
        return self.work_scale * self.size if self.work_scale > 0 else 0


def _odd(n: float) -> int:
    return max(3, int(round(n)) | 1)


def hair_mask(img: np.ndarray, kernel_frac: float, threshold: int) -> np.ndarray:
    """uint8 mask (255 = hair) of thin dark structures."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = _odd(kernel_frac * min(gray.shape))
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (k, k))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, cross)
    blackhat = cv2.GaussianBlur(blackhat, (3, 3), 0)
    _, mask = cv2.threshold(blackhat, threshold, 255, cv2.THRESH_BINARY)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8))  # cover the anti-aliased hair edges too


def remove_hair(img: np.ndarray, kernel_frac: float = 0.04, threshold: int = 10, radius: int = 3) -> np.ndarray:
    mask = hair_mask(img, kernel_frac, threshold)
    if not mask.any():
        return img
    return cv2.inpaint(img, mask, radius, cv2.INPAINT_TELEA)


def lesion_box(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of the lesion, or None when no lesion stands out.

    Otsu threshold on a blurred grey image, ignoring the dermoscope's black border; among the dark
    components, the one that is large and near the centre wins.
    """
    h, w = img.shape[:2]
    gray = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (0, 0), max(min(h, w) / 100, 1))
    valid = gray > 25  # the black vignette is not lesion
    if valid.sum() < 0.2 * h * w:
        return None
    thr, _ = cv2.threshold(gray[valid].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = ((gray < thr) & valid).astype(np.uint8)
    k = _odd(min(h, w) / 50)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    sigma = 0.35 * min(h, w)
    best, best_score = None, 0.0
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA]
        if area < 0.005 * h * w:
            continue
        d2 = (cents[i][0] - w / 2) ** 2 + (cents[i][1] - h / 2) ** 2
        score = area * np.exp(-d2 / (2 * sigma**2))
        if score > best_score:
            best, best_score = i, score
    if best is None:
        return None
    x, y, bw, bh = stats[best, :4]
    return int(x), int(y), int(x + bw), int(y + bh)


def center_crop(img: np.ndarray, box: tuple[int, int, int, int] | None, margin: float) -> np.ndarray:
    """A square crop around `box` (with margin), kept inside the image; the central square if None."""
    h, w = img.shape[:2]
    short = min(h, w)
    if box is None:
        side, cx, cy = short, w / 2, h / 2
    else:
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
        side = int(np.clip(side, 0.25 * short, short))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = int(side)
    left = int(np.clip(round(cx - side / 2), 0, w - side))
    top = int(np.clip(round(cy - side / 2), 0, h - side))
    return img[top : top + side, left : left + side]


def resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def to_working(img: np.ndarray, short: int) -> np.ndarray:
    """`img` shrunk (area-averaged) to `short` px on its short side; unchanged if already no larger."""
    h, w = img.shape[:2]
    if not short or min(h, w) <= short:
        return img
    k = short / min(h, w)
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def preprocess_image(img: np.ndarray, cfg: PrepConfig) -> np.ndarray:
    """Raw RGB image -> `cfg.size` square RGB image, all work done at the working resolution."""
    img = to_working(img, cfg.working_short)
    if cfg.hair_removal:
        img = remove_hair(img, cfg.hair_kernel, cfg.hair_threshold, cfg.inpaint_radius)
    box = lesion_box(img) if cfg.center else None
    return resize(center_crop(img, box, cfg.margin), cfg.size)
