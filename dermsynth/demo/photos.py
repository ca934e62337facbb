"""The demo's photographs: how many each source gets (DemoSpec, the small demo's and the scale
profile's), drawing them in a source's style, and the helpers every layout writer shares (JPEG
encoding, the skin-truth notes, patients).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dermsynth.data.subgroups import skin_tone
from dermsynth.demo.phantom import (STYLES, Lesion, photographed_ita, render, render_with_truth, sample_lesion,
                                    sample_skin)
from dermsynth.errors import UserValueError


@dataclass(frozen=True)
class DemoSpec:
    """How many lesions each source gets, its malignant share and its image size (w, h)."""

    lesions: int
    malignant: float
    size: tuple[int, int]
    photos: tuple[int, int]  # min, max photographs per lesion
    render_short: int = 0  # > 0: draw at this short side and upscale (6000 x 4000 phantoms cost seconds each)


DEFAULT_SPECS: dict[str, DemoSpec] = {
    "ham10000": DemoSpec(275, 0.30, (300, 225), (1, 3)),
    "isic2019": DemoSpec(140, 0.35, (256, 256), (1, 2)),
    "isic2020": DemoSpec(140, 0.25, (320, 240), (1, 2)),
    "isic2024": DemoSpec(200, 0.25, (128, 128), (1, 1)),
}


# The real archives, for the scale profile: images (ISIC 2019 without the HAM10000 images it
# republishes), photographs per lesion, malignant share, typical image size (w, h).
REAL_ARCHIVES = {
    "ham10000": (10_015, (1, 2), 0.195, (600, 450)),
    "isic2019": (15_316, (1, 1), 0.48, (1024, 1024)),
    "isic2020": (33_126, (1, 1), 0.0176, (6000, 4000)),
    "isic2024": (401_059, (1, 1), 0.00098, (130, 130)),
}
ISIC2020_DUPLICATE_SHARE = 425 / 33_126  # pairs in ISIC_2020_Training_Duplicates.csv


def scale_specs(fraction: float, sources: tuple[str, ...] = tuple(REAL_ARCHIVES)) -> dict[str, DemoSpec]:
    """The archives at their real image sizes and `fraction` of their real counts (1 = full size)."""
    if not 0 < fraction <= 1:
        raise UserValueError(f"--scale must be in (0, 1], got {fraction}")
    out = {}
    for name in sources:
        images, photos, malignant, size = REAL_ARCHIVES[name]
        lesions = max(int(round(images * fraction / (sum(photos) / 2))), 4)
        malignant = max(malignant, 2.0 / lesions)  # at least a couple of malignant lesions at tiny fractions
        out[name] = DemoSpec(lesions, malignant, size, photos, render_short=min(min(size), 512))
    return out


def jpeg_bytes(arr: np.ndarray, quality: int = 90, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def photographs(source: str, spec: DemoSpec, rng: np.random.Generator):
    """(lesion index, lesion, image, true skin ITA) for every photograph of the source.

    The small demo draws every image before its metadata (the random stream, and so the versioned
    demo files, depend on that order); the scale profile streams them, so memory holds one image.
    Skin tones come from a stream of their own, so the rest of the demo is drawn as before."""
    tones = rng.spawn(1)[0]

    def gen():
        n_mal = int(round(spec.lesions * spec.malignant))
        labels = ["malignant"] * n_mal + ["benign"] * (spec.lesions - n_mal)
        rng.shuffle(labels)
        for li, label in enumerate(labels):
            lesion = sample_lesion(label, rng)
            skin, _ = sample_skin(source, tones)
            for _ in range(int(rng.integers(spec.photos[0], spec.photos[1] + 1))):
                yield li, lesion, *_render(lesion, source, spec, rng, skin)

    return gen() if spec.render_short else list(gen())


def _render(lesion: Lesion, source: str, spec: DemoSpec, rng: np.random.Generator,
            skin: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """The photograph and the ITA of its skin as photographed (NaN in the scale profile: not measured)."""
    w, h = spec.size
    if not spec.render_short:
        img, truth = render_with_truth(lesion, STYLES[source], w, h, rng, skin_rgb=skin)
        return img, round(photographed_ita(truth), 2)
    if min(w, h) <= spec.render_short:
        return render(lesion, STYLES[source], w, h, rng, skin_rgb=skin), float("nan")
    k = spec.render_short / min(w, h)
    small = render(lesion, STYLES[source], max(int(round(w * k)), 1), max(int(round(h * k)), 1), rng, skin_rgb=skin)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), float("nan")


TRUTH_FILE = "phantom_skin_truth.csv"  # demo only: the skin tone each phantom was photographed with


def note_truth(truth: list | None, source: str, image_id: str, skin_ita: float) -> None:
    if truth is not None:
        truth.append({"source": source, "image_id": image_id, "ita": skin_ita, "skin_tone": skin_tone(skin_ita)})


def assign_patients(n_lesions: int, rng: np.random.Generator, prefix: str) -> list[str]:
    """Assign lesions to patients, 1-4 lesions each."""
    ids, p = [], 0
    while len(ids) < n_lesions:
        ids += [f"{prefix}{p:07d}"] * int(rng.integers(1, 5))
        p += 1
    return ids[:n_lesions]
