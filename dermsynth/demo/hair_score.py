"""Preprocessing scored on phantoms that know where their hairs and lesions are: hair removal, and
(score_centring) lesion segmentation and centring.

Each phantom is drawn twice from the same random draws, with and without hairs
(`demo.phantom.render_with_truth`). The hairy one goes through the configured hair removal at the
working resolution and is shrunk to the output size; both are then compared at that size, which is
what the classifier and the diffusion model see:

- `removed`: share of hair pixels (HAIR_CONTRAST grey levels or more darker than the hairless
  twin) that are no longer that much darker; `removed_over_lesion`: the same inside the lesion.
- `lesion_error`: mean absolute RGB error against the hairless twin inside the lesion, and
  `lesion_error_off_hair` away from the hairs (what inpainting false alarms blur), with
  `lesion_error_without_removal` for scale.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dermsynth.data.devset import score_one
from dermsynth.data.hair import remove_hair
from dermsynth.data.preprocess import PrepConfig, to_working
from dermsynth.demo.phantom import HAIR_CONTRAST, STYLES, render_with_truth, sample_lesion

_GREY = np.array([0.299, 0.587, 0.114], np.float32)


def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ _GREY


def _shrink_to(img: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_AREA)


def score_hair_removal(cfg: PrepConfig, n: int = 24, size: tuple[int, int] = (600, 450), hairs: float = 6.0,
                       seed: int = 0) -> dict:
    """Hair removal of `cfg` on `n` phantoms of `size` (w, h) with about `hairs` hairs each."""
    rng = np.random.default_rng(seed)
    hair_px = left = hair_lesion_px = left_lesion = 0
    err, err_off, err_none = [], [], []
    for i in range(n):
        source = ("ham10000", "isic2019")[i % 2]  # two skin tones and optics
        style = dataclasses.replace(STYLES[source], hair_mean=hairs)
        lesion = sample_lesion("malignant" if i % 3 == 0 else "benign", rng)
        hairy, truth = render_with_truth(lesion, style, size[0], size[1], rng)
        clean = to_working(truth.hairless, cfg.size)
        work = to_working(hairy, cfg.working_short)
        out = _shrink_to(remove_hair(work, cfg.hair_kernel, cfg.hair_threshold, cfg.inpaint_radius,
                                     cfg.hair_min_length, cfg.pale_hair_threshold) if cfg.hair_removal else work, clean)
        before = _shrink_to(hairy, clean)
        in_lesion = _shrink_to(truth.lesion.astype(np.uint8) * 255, clean) > 127
        hair = _grey(clean) - _grey(before) >= HAIR_CONTRAST
        still = _grey(clean) - _grey(out) >= HAIR_CONTRAST
        hair_px += int(hair.sum())
        left += int((hair & still).sum())
        hair_lesion_px += int((hair & in_lesion).sum())
        left_lesion += int((hair & still & in_lesion).sum())
        near_hair = cv2.dilate(hair.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        diff = np.abs(out.astype(np.float32) - clean)
        err.append(diff[in_lesion].mean())
        err_off.append(diff[in_lesion & ~near_hair].mean())
        err_none.append(np.abs(before.astype(np.float32) - clean)[in_lesion].mean())
    return {
        "phantoms": n,
        "phantom_size": list(size),
        "output_short_side": cfg.size,
        "working_short_side": cfg.working_short or "raw",
        "hair_pixels": hair_px,
        "removed": round(1 - left / max(hair_px, 1), 4),
        "removed_over_lesion": round(1 - left_lesion / max(hair_lesion_px, 1), 4),
        "lesion_error": round(float(np.mean(err)), 3),
        "lesion_error_off_hair": round(float(np.mean(err_off)), 3),
        "lesion_error_without_removal": round(float(np.mean(err_none)), 3),
    }


def score_centring(cfg: PrepConfig, n: int = 24, size: tuple[int, int] = (600, 450), seed: int = 0) -> dict:
    """Lesion segmentation and centring of `cfg` on `n` phantoms of `size` (w, h), whose lesion masks
    are known: median Dice against the true mask, and the share of crops with the lesion centred and
    whole (centroid within 0.2 of the side from the crop's centre, 80 % of its box inside), as
    dermsynth.data.devset scores the real photographs."""
    rng = np.random.default_rng(seed)
    scored = []
    for i in range(n):
        source = ("ham10000", "isic2019", "isic2020")[i % 3]  # skins, optics, and rims (ISIC 2019's 45 %)
        lesion = sample_lesion("malignant" if i % 2 else "benign", rng)
        img, truth = render_with_truth(lesion, STYLES[source], size[0], size[1], rng)
        scored.append(score_one(img, truth.lesion, False, cfg))
    return {
        "phantoms": n,
        "dice_median": round(float(np.median([s.dice for s in scored])), 4),
        "centred_whole": round(float(np.mean([bool(s.centred_whole) for s in scored])), 4),
        "fallback": int(sum(s.centring == "fallback" for s in scored)),
        "rim_share_max": round(float(max(s.rim_share for s in scored)), 4),
    }
