"""The dermoscope's field of view: what lies inside its black rim, black bars and dark vignette corners.

Every later step (lesion search, skin sample, crop) stays inside it. Two cues, both relative to the
skin's brightness (the bright pixels of the central disk):
- black: near-black regions (below DARK_FRACTION of the skin) connected to the image border and
  lying in its periphery: rims and bars. A lesion is brown or blue, not black.
- round: the dermoscope's circular field, seen as a dark vignette. Along rays from the centre, the
  outermost point brighter than VIGNETTE_FRACTION of the skin marks the field's edge; a circle is
  fitted to those points robustly, so rays that cross a dark lesion touching the edge are outliers
  and the lesion stays inside the field.
Worked out at ANALYSIS_SHORT px on the short side and scaled back: the field is a large, smooth shape.
"""
from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_SHORT = 128
# brightness (max of R, G, B) below this fraction of the skin's counts as rim / bar
DARK_FRACTION = 0.3
# along a ray, darker than this fraction of the skin up to the image's edge is vignette
VIGNETTE_FRACTION = 0.55
RAYS = 96
OUTSIDE_DARK = 0.8  # share of the pixels outside a fitted circle that must be vignette-dark
# a dark region touching the border is outside the field only if it is mostly in the periphery: its
# pixels' mean distance from the centre is at least this fraction of the half diagonal
PERIPHERY = 0.6


def shrink(img: np.ndarray, short: int) -> np.ndarray:
    """`img` area-shrunk to `short` px on the short side (unchanged if no larger)."""
    h, w = img.shape[:2]
    if min(h, w) <= short:
        return img
    k = short / min(h, w)
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def brightness(img: np.ndarray) -> np.ndarray:
    """Max of the RGB channels (HSV's V) as float32: a black rim is dark in every channel."""
    return img.max(axis=2).astype(np.float32)


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through points: (cx, cy, r)."""
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    b = x * x + y * y
    (p, q, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = p / 2, q / 2
    return float(cx), float(cy), float(np.sqrt(max(c + cx * cx + cy * cy, 0.0)))


def round_field(v: np.ndarray, threshold: float) -> np.ndarray | None:
    """bool mask inside the dermoscope's circular field seen as vignette, or None when there is none."""
    h, w = v.shape
    cx, cy = w / 2, h / 2
    edge_x, edge_y = [], []
    for t in np.linspace(0, 2 * np.pi, RAYS, endpoint=False):
        dx, dy = np.cos(t), np.sin(t)
        rmax = min((w - 1 - cx) / dx if dx > 1e-9 else (-cx / dx if dx < -1e-9 else np.inf),
                   (h - 1 - cy) / dy if dy > 1e-9 else (-cy / dy if dy < -1e-9 else np.inf))
        r = np.arange(0, rmax, 0.5)
        vals = v[np.round(cy + r * dy).astype(int), np.round(cx + r * dx).astype(int)]
        if vals[-1] >= threshold:
            continue  # bright to the image's edge: no vignette on this ray
        bright = np.nonzero(vals >= threshold)[0]
        if len(bright):
            edge_x.append(cx + r[bright[-1]] * dx)
            edge_y.append(cy + r[bright[-1]] * dy)
    if len(edge_x) < RAYS // 4:
        return None
    x, y = np.array(edge_x), np.array(edge_y)
    keep = np.ones(len(x), bool)
    for _ in range(4):  # refit without the rays that stopped inside a dark lesion (or went past a gap)
        fx, fy, fr = _fit_circle(x[keep], y[keep])
        res = np.abs(np.hypot(x - fx, y - fy) - fr)
        new = res < max(2.0, 2.5 * 1.4826 * float(np.median(res[keep])))
        if new.sum() < RAYS // 5 or np.array_equal(new, keep):
            break
        keep = new
    if keep.sum() < RAYS // 5 or fr < 0.3 * min(h, w):
        return None
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx - fx) ** 2 + (yy - fy) ** 2 <= fr**2
    # a vignette is dark all round outside its circle; a circle through the border of a dark lesion
    # that reaches the image's edge has bright skin outside it too
    if (~inside).any() and (v[~inside] < threshold).mean() < OUTSIDE_DARK:
        return None
    return inside


def field_of_view(img: np.ndarray) -> np.ndarray:
    """bool mask, True inside the dermoscope's field, at the size of `img` (RGB uint8)."""
    h, w = img.shape[:2]
    small = shrink(img, ANALYSIS_SHORT)
    sh, sw = small.shape[:2]
    v = cv2.GaussianBlur(brightness(small), (0, 0), 1.0)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    rr = np.hypot((xx - sw / 2) / (sw / 2), (yy - sh / 2) / (sh / 2)) / np.sqrt(2)  # 0 centre .. 1 corner
    # the skin's brightness: bright pixels of the central disk (the lesion is darker, the rim absent there)
    ref = float(np.percentile(v[rr < 0.45], 90))
    dark = (v < DARK_FRACTION * ref).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    outside = np.zeros((sh, sw), bool)
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        touches = x == 0 or y == 0 or x + bw == sw or y + bh == sh
        if not touches:
            continue
        comp = labels == i
        if rr[comp].mean() >= PERIPHERY:
            outside |= comp
    inside = ~outside
    circle = round_field(v, VIGNETTE_FRACTION * ref)
    if circle is not None:
        inside &= circle
    # the largest inside region (outside regions touch the border, so a dark lesion inside stays field)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=4)
    if n > 2:
        inside = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if inside.sum() < 0.25 * sh * sw:  # nothing plausible: trust the whole frame rather than a sliver
        return np.ones((h, w), bool)
    # pull the edge in by two analysis pixels: the rim's soft transition is not skin either
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(inside, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def fill_outside(img: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`img` with the pixels outside `inside` filled from the surrounding skin.

    Normalised convolution (blur of the image times the mask over the blur of the mask) at growing
    scales: each outside pixel takes the smooth colour of the nearest field pixels, with no hard edge,
    so neither the generator nor a classifier sees a rim."""
    if inside.all():
        return img
    out = img.astype(np.float32)
    m = inside.astype(np.float32)
    filled = np.zeros(img.shape[:2], bool) | inside
    short = min(img.shape[:2])
    for sigma in (short / 64, short / 24, short / 8, short / 3):
        wsum = cv2.GaussianBlur(m, (0, 0), sigma)
        est = cv2.GaussianBlur(out * m[..., None], (0, 0), sigma) / np.maximum(wsum, 1e-6)[..., None]
        take = ~filled & (wsum > 1e-3)
        out[take] = est[take]
        filled |= take
        if filled.all():
            break
    if not filled.all():  # a far corner beyond every scale: the field's median colour
        out[~filled] = np.median(img[inside], axis=0)
    return np.clip(out, 0, 255).astype(np.uint8)
