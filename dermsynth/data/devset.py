"""Preprocessing scored on real dermoscopy photographs with expert lesion masks (a development set).

A development set is a folder with `images/<id>.jpg`, `masks/<id>.png` (255 = lesion, where an
expert mask exists) and `metadata.csv` (image_id, label, mask: expert|none, tags: `;`-separated
among vignette, rim, faint, small, large, dark_hair, pale_hair, hair_free, ruler, ink, bubbles, ...).
docs/real_photos.md says how to build one from HAM10000 / ISIC downloads and their segmentations.

Scores, each with the target issue 17 set (`TARGETS`):
- `centred_whole`: the lesion's centroid within 0.2 of the side from the crop's centre and at least
  80 % of its bounding box inside the crop; `centred_whole_fitting`: the same among the lesions whose
  box fits in a square of the image's short side (no square crop can hold 80 % of a larger one);
  `without_lesion`: crops holding no lesion pixel;
- `dice`, `iou` of the segmentation against the expert mask;
- on hair-free photographs, `hair_masked_lesion`: share of the lesion the hair mask covers, and
  `fine_structure`: high-frequency energy inside the lesion after / before hair removal;
- `rim_share`: near-black pixels connected to the prepared image's border (what a rim leaves);
- skin tone: `ita_measured`, `ita_10_70`, `ita_above_90` shares.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dermsynth.data.preprocess import PrepConfig, Prepared, prepare_image, to_working

TARGETS = {"centred_whole_fitting": 0.95, "without_lesion": 0, "dice_median": 0.8, "hair_masked_lesion_median": 0.02,
           "fine_structure_median": 0.9, "rim_share_max": 0.01, "ita_measured": 0.95, "ita_10_70": 0.75,
           "ita_above_90": 0}


@dataclass(frozen=True)
class Scored:
    image_id: str
    centring: str
    centred_whole: bool | None
    fits: bool | None  # the lesion's box fits in a square of the image's short side (else 80 % of it cannot)
    has_lesion: bool | None
    dice: float
    iou: float
    hair_masked_lesion: float
    fine_structure: float
    rim_share: float
    ita: float


def load(root: Path) -> pd.DataFrame:
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    missing = [i for i in meta.image_id if not (root / "images" / f"{i}.jpg").is_file()]
    if missing:
        raise FileNotFoundError(f"{root}/images: no file for {len(missing)} ids of metadata.csv, e.g. {missing[:3]}")
    return meta


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    if not path.is_file():
        return None
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 127


def _highpass_energy(gray: np.ndarray, mask: np.ndarray) -> float:
    # the fine structure (pigment network, dots, globules): the Laplacian of a lightly smoothed image
    lap = cv2.Laplacian(cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.7), cv2.CV_32F)
    return float(np.mean(lap[mask] ** 2)) if mask.any() else math.nan


def rim_share(img: np.ndarray, dark: int = 40) -> float:
    """Share of near-black pixels (max RGB < `dark`) connected to the image's border: a rim's leftovers."""
    black = (img.max(axis=2) < dark).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(black, connectivity=8)
    h, w = black.shape
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    return float(sum(stats[i, cv2.CC_STAT_AREA] for i in edge) / (h * w))


def score_one(img: np.ndarray, truth: np.ndarray | None, hair_free: bool, cfg: PrepConfig,
              image_id: str = "") -> Scored:
    work = to_working(img, cfg.working_short)
    p: Prepared = prepare_image(work, cfg, min(img.shape[:2]))
    truth_w = None if truth is None else cv2.resize(truth.astype(np.uint8), (work.shape[1], work.shape[0]),
                                                     interpolation=cv2.INTER_NEAREST) > 0
    centred = has = fits = None
    dice = iou = masked = fine = math.nan
    if truth_w is not None and truth_w.any():
        x0, y0, x1, y1 = p.box
        side = x1 - x0
        ys, xs = np.nonzero(truth_w)
        cx, cy = xs.mean(), ys.mean()
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
        box_in = inter / ((bx1 - bx0) * (by1 - by0))
        fits = bool(max(bx1 - bx0, by1 - by0) <= min(work.shape[:2]))
        centred = bool(math.hypot(cx - (x0 + x1) / 2, cy - (y0 + y1) / 2) <= 0.2 * side and box_in >= 0.8)
        has = bool(truth_w[y0:y1, x0:x1].any())
        seg = p.lesion.mask
        inter_px = float((seg & truth_w).sum())
        dice = 2 * inter_px / (seg.sum() + truth_w.sum())
        iou = inter_px / float((seg | truth_w).sum())
        if hair_free and cfg.hair_removal:
            hm = p.hair > 0 if p.hair is not None else np.zeros(truth_w.shape, bool)
            masked = float((hm & truth_w).sum() / truth_w.sum())
            after = cv2.inpaint(work, hm.astype(np.uint8) * 255, cfg.inpaint_radius, cv2.INPAINT_TELEA) \
                if hm.any() else work
            g = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)  # noqa: E731
            fine = _highpass_energy(g(after), truth_w) / max(_highpass_energy(g(work), truth_w), 1e-9)
    return Scored(image_id, p.centring, centred, fits, has, dice, iou, masked, fine, rim_share(p.image), p.ita)


def score(root: Path, cfg: PrepConfig) -> tuple[pd.DataFrame, dict]:
    """Per-image scores and their summary (with TARGETS) of preprocessing `cfg` on the set at `root`."""
    meta = load(root)
    rows = []
    for r in meta.itertuples():
        img = read_rgb(root / "images" / f"{r.image_id}.jpg")
        truth = read_mask(root / "masks" / f"{r.image_id}.png", img.shape[:2])
        rows.append(score_one(img, truth, "hair_free" in str(r.tags).split(";"), cfg, r.image_id))
    df = pd.DataFrame([vars(s) for s in rows]).merge(meta[["image_id", "label", "tags"]], on="image_id")
    return df, summarise(df)


def summarise(df: pd.DataFrame) -> dict:
    masked = df[df.centred_whole.notna()]
    hair_free = df[df.hair_masked_lesion.notna()]
    ita = df.ita.astype(float)
    out = {
        "images": int(len(df)), "with_mask": int(len(masked)), "hair_free_with_mask": int(len(hair_free)),
        "fallback": int((df.centring == "fallback").sum()),
        "centred_whole": round(float(masked.centred_whole.astype(bool).mean()), 4) if len(masked) else None,
        "centred_whole_fitting": round(float(masked[masked.fits.astype(bool)].centred_whole.astype(bool).mean()), 4)
        if len(masked) else None,
        "lesion_wider_than_image": int((~masked.fits.astype(bool)).sum()),
        "without_lesion": int((~masked.has_lesion.astype(bool)).sum()),
        "dice_median": round(float(masked.dice.median()), 4) if len(masked) else None,
        "iou_median": round(float(masked.iou.median()), 4) if len(masked) else None,
        "hair_masked_lesion_median": round(float(hair_free.hair_masked_lesion.median()), 4) if len(hair_free) else None,
        "fine_structure_median": round(float(hair_free.fine_structure.median()), 4) if len(hair_free) else None,
        "rim_share_max": round(float(df.rim_share.max()), 4),
        "ita_measured": round(float(ita.notna().mean()), 4),
        "ita_10_70": round(float(ita.between(10, 70).mean()), 4),
        "ita_above_90": int((ita > 90).sum()),
        "ita_median": round(float(ita.median()), 2),
    }
    out["targets"] = TARGETS
    return out
