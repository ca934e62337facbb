"""Procedural dermoscopy-like phantoms.

A lesion is drawn from a latent malignancy score `s` (benign ~ N(-mu, 1), malignant ~ N(+mu, 1)).
Every visible feature (size, border irregularity, asymmetry, colour count, blue-grey veil, dark
blotches) is a noisy function of `s`, so the two classes overlap: a good classifier reaches a
balanced accuracy around Phi(mu) (~0.92 for the default mu), not 1.0. Each lesion is photographed
several times with its own pose, lighting and hairs, and each source has its own skin tone, optics
and artefacts, which gives the domain shift seen between HAM10000 and the ISIC archives.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dermsynth.data.colour import ita_of_pixels

# The class separation of the latent score; Phi(1.4) ~ 0.92 is the Bayes balanced accuracy. At 0.9 (0.82) the
# audit's embedder reached a real-trained AUROC of only 0.74 at 64 px, which left no room to tell a generator
# that draws its class (train-on-synthetic AUROC >= 0.75) from one that does not.
CLASS_MU = 1.4


@dataclass(frozen=True)
class SourceStyle:
    """How one archive's images look: skin tone, dermoscope optics, typical artefacts."""

    skin_rgb: tuple[int, int, int]
    contrast: float
    blur: float  # Gaussian sigma in px of the optics at the source's resolution
    vignette_prob: float  # share of images with the black circular dermoscope border
    hair_mean: float
    ruler_prob: float
    bubble_prob: float


STYLES: dict[str, SourceStyle] = {
    "ham10000": SourceStyle((222, 172, 152), 1.00, 0.6, 0.05, 3.0, 0.10, 0.15),
    "isic2019": SourceStyle((205, 160, 145), 1.10, 0.8, 0.45, 4.0, 0.15, 0.25),
    "isic2020": SourceStyle((232, 190, 170), 0.90, 0.7, 0.20, 2.0, 0.05, 0.10),
    "isic2024": SourceStyle((190, 150, 128), 0.80, 1.4, 0.00, 1.0, 0.00, 0.00),
}


@dataclass(frozen=True)
class Lesion:
    """Everything that stays the same between photographs of one lesion."""

    label: str  # benign | malignant
    score: float
    radius: float  # fraction of the image's short side
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) of border harmonics k=2..
    asym: tuple[float, float]  # pigment centre offset, fraction of the radius
    base_rgb: tuple[int, int, int]
    veil: float  # 0..1 strength of a blue-grey veil
    blotches: float  # 0..1 share of dark blotches
    texture_seed: int


def sample_lesion(label: str, rng: np.random.Generator) -> Lesion:
    mu = CLASS_MU if label == "malignant" else -CLASS_MU
    s = float(rng.normal(mu, 1.0))
    z = 1.0 / (1.0 + np.exp(-1.3 * s))  # 0..1 "how malignant it looks"
    radius = float(np.clip(rng.normal(0.20 + 0.10 * z, 0.035), 0.10, 0.38))
    irregular = 0.03 + 0.16 * z * rng.uniform(0.6, 1.4)
    harmonics = tuple(
        (float(irregular * rng.uniform(0.3, 1.0) / (1 + 0.5 * k)), float(rng.uniform(0, 2 * np.pi)))
        for k in range(2, 9)
    )
    asym_r = 0.35 * z * rng.uniform(0.3, 1.2)
    ang = rng.uniform(0, 2 * np.pi)
    dark = 0.25 + 0.55 * z + rng.normal(0, 0.08)
    brown = np.array([150, 95, 60]) * (1 - dark) + np.array([60, 35, 25]) * dark
    return Lesion(
        label=label,
        score=s,
        radius=radius,
        harmonics=harmonics,
        asym=(float(asym_r * np.cos(ang)), float(asym_r * np.sin(ang))),
        base_rgb=tuple(int(c) for c in np.clip(brown, 0, 255)),
        veil=float(np.clip(z * rng.uniform(-0.2, 1.1), 0, 1)),
        blotches=float(np.clip(z * rng.uniform(-0.1, 0.9), 0, 1)),
        texture_seed=int(rng.integers(2**31)),
    )


# Skin tones the demo draws per lesion, as ITA bands (dermsynth.data.subgroups, Del Bino et al.): the range
# of the painted colour's ITA per band. The photograph's skin comes out darker than the paint (lighting,
# vignetting, contrast: measured 3 to 15 degrees of ITA, most in the middle bands), so each range sits
# that much above its band's centre, and the photographed skin lands inside the band.
TONE_RANGES = {"very_light": (63.0, 68.0), "light": (51.0, 55.0), "intermediate": (40.0, 44.0), "tan": (28.0, 34.0),
               "brown": (-2.0, 10.0), "dark": (-37.0, -29.0)}
# Share of each band per source: mostly light skin, as in the real archives (Kinyanjui et al., 2020)
TONE_MIX = {
    "ham10000": {"very_light": 0.35, "light": 0.35, "intermediate": 0.17, "tan": 0.08, "brown": 0.04, "dark": 0.01},
    "isic2019": {"very_light": 0.30, "light": 0.35, "intermediate": 0.18, "tan": 0.10, "brown": 0.05, "dark": 0.02},
    "isic2020": {"very_light": 0.30, "light": 0.30, "intermediate": 0.20, "tan": 0.12, "brown": 0.06, "dark": 0.02},
    "isic2024": {"very_light": 0.20, "light": 0.30, "intermediate": 0.22, "tan": 0.15, "brown": 0.09, "dark": 0.04},
}


def skin_of_ita(ita_degrees: float, b: float = 16.0, a: float = 11.0) -> tuple[int, int, int]:
    """The sRGB colour with CIELAB b* = `b`, a* = `a` and the given ITA (L* = 50 + b* tan ITA)."""
    lab = np.array([[[50.0 + b * np.tan(np.radians(ita_degrees)), a, b]]], np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)[0, 0]
    return tuple(int(round(c)) for c in np.clip(rgb * 255.0, 0, 255))


def sample_skin(source: str, rng: np.random.Generator) -> tuple[tuple[int, int, int], float]:
    """(skin RGB, its true ITA in degrees) of one patient of `source`."""
    mix = TONE_MIX[source]
    band = str(rng.choice(list(mix), p=list(mix.values())))
    ita = float(rng.uniform(*TONE_RANGES[band]))
    rgb = skin_of_ita(ita, float(rng.uniform(13.0, 19.0)), float(rng.uniform(8.0, 14.0)))
    return rgb, ita


def _luminance(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _smooth_noise(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std low-frequency noise."""
    n = rng.standard_normal((h, w)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=max(scale, 0.5))
    return (n - n.mean()) / (n.std() + 1e-6)


def _draw_hairs(img: np.ndarray, count: int, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(count):
        p0 = rng.uniform([0, 0], [w, h])
        p2 = p0 + rng.normal(0, 0.6, 2) * max(h, w)
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.15, 2) * max(h, w)
        t = np.linspace(0, 1, 40)[:, None]
        pts = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).astype(np.int32)
        shade = int(rng.uniform(15, 60))
        thick = int(rng.choice([1, 1, 2])) if max(h, w) < 400 else int(rng.choice([2, 3]))
        cv2.polylines(img, [pts], False, (shade, shade - 5, shade - 10), thick, cv2.LINE_AA)


@dataclass(frozen=True)
class Truth:
    """What a photograph would be without its hairs, and where the hairs and the lesion are."""

    hairless: np.ndarray  # RGB uint8, the same photograph (same lighting, optics, noise) without hair
    hair: np.ndarray  # bool, pixels the hairs darken by at least HAIR_CONTRAST grey levels
    lesion: np.ndarray  # bool, inside the lesion's border


def photographed_ita(truth: "Truth") -> float:
    """Ground truth of the demo's skin tone: ITA of the skin as photographed (hairless twin, outside the
    lesion, inside the dermoscope's field), medians of L* and b* as dermsynth.data.preprocess.image_ita takes them."""
    skin = ~truth.lesion & (cv2.cvtColor(truth.hairless, cv2.COLOR_RGB2GRAY) > 25)
    return ita_of_pixels(truth.hairless, skin, trim_dark_tail=False)


HAIR_CONTRAST = 10  # grey levels: five times the sensor noise's sigma, so a "hair pixel" is visible hair


def render(
    lesion: Lesion,
    style: SourceStyle,
    width: int,
    height: int,
    rng: np.random.Generator,
    skin_rgb: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """One photograph of `lesion` as an RGB uint8 array of shape (height, width, 3); `skin_rgb`
    replaces the source's skin colour (the patient's own tone)."""
    return render_with_truth(lesion, style, width, height, rng, truth=False, skin_rgb=skin_rgb)[0]


def _skin(h: int, w: int, style: SourceStyle, skin_rgb: tuple[int, int, int] | None,
          rng: np.random.Generator) -> np.ndarray:
    """Patient (or source) tone, per-image lighting, low-frequency mottling."""
    light = rng.uniform(0.9, 1.08)
    if skin_rgb is not None:  # a patient's tone with ground truth: lighting within +-2 %, a degree or two of ITA
        light = 0.98 + (light - 0.9) / 0.18 * 0.04
    skin = np.array(skin_rgb if skin_rgb is not None else style.skin_rgb, np.float32) * light
    img = np.ones((h, w, 3), np.float32) * skin
    img += _smooth_noise(h, w, min(h, w) / 12, rng)[..., None] * 9
    img += _smooth_noise(h, w, 1.2, rng)[..., None] * 3
    return img


@dataclass(frozen=True)
class _Pose:
    """Where this photograph puts the lesion: centre, rotation, radius, and its soft inside mask."""
    cx: float
    cy: float
    rot: float
    r0: float
    inside: np.ndarray


def _pose(lesion: Lesion, h: int, w: int, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> _Pose:
    """Shift, rotation and zoom around the lesion; its irregular border."""
    cx = w / 2 + rng.normal(0, 0.06) * w
    cy = h / 2 + rng.normal(0, 0.06) * h
    rot = rng.uniform(0, 2 * np.pi)
    r0 = lesion.radius * min(h, w) * rng.uniform(0.9, 1.1)
    dx, dy = xx - cx, yy - cy
    rho = np.sqrt(dx**2 + dy**2)
    theta = np.arctan2(dy, dx) - rot
    border = np.ones_like(theta)
    for k, (amp, phase) in enumerate(lesion.harmonics, start=2):
        border += amp * np.cos(k * theta + phase)
    edge = 0.6 + 2.5 * (1 - min(lesion.blotches + lesion.veil, 1))  # malignant borders are abrupt
    return _Pose(cx, cy, rot, r0, 1 / (1 + np.exp(np.clip((rho - r0 * border) / edge, -50, 50))))


def _pigment(lesion: Lesion, style: SourceStyle, skin_rgb: tuple[int, int, int] | None, pose: _Pose,
             xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darker towards an off-centre core (asymmetry), textured; veils and blotches where the lesion has them."""
    h, w = xx.shape
    cx, cy, rot, r0 = pose.cx, pose.cy, pose.rot, pose.r0
    trng = np.random.default_rng(lesion.texture_seed + int(rng.integers(4)))
    ax, ay = lesion.asym
    ca, sa = np.cos(rot), np.sin(rot)
    px, py = cx + r0 * (ax * ca - ay * sa), cy + r0 * (ax * sa + ay * ca)
    core = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * (0.6 * r0) ** 2))
    tex = _smooth_noise(h, w, max(r0 / 6, 1), trng)
    # On a patient's own skin the pigment keeps its contrast to the skin: melanin darkens what is there, so
    # a lesion on dark skin is darker than the same lesion on light skin (and stays visible)
    tint = 1.0 if skin_rgb is None else float(np.clip(_luminance(skin_rgb) / _luminance(style.skin_rgb), 0.3, 1.15))
    pig = np.array(lesion.base_rgb, np.float32)[None, None, :] * tint * (1.15 - 0.35 * core[..., None])
    pig *= 1 + 0.12 * tex[..., None]
    if lesion.veil > 0.05:
        veil = np.clip(_smooth_noise(h, w, r0 / 3, trng) + 1.2 * core - 0.6, 0, 1) * lesion.veil
        pig = pig * (1 - veil[..., None]) + np.array([95, 105, 135], np.float32) * tint * veil[..., None]
    if lesion.blotches > 0.05:
        blot = (_smooth_noise(h, w, max(r0 / 8, 1), trng) > 1.4 - lesion.blotches).astype(np.float32)
        blot = cv2.GaussianBlur(blot, (0, 0), 1.0) * lesion.blotches
        pig = pig * (1 - 0.7 * blot[..., None]) + 15 * blot[..., None]
    return pig


def _artefacts(img: np.ndarray, style: SourceStyle, rng: np.random.Generator) -> np.ndarray:
    """Source contrast, air bubbles and a ruler, drawn into `img` (float RGB)."""
    h, w = img.shape[:2]
    img = (img - img.mean()) * style.contrast * rng.uniform(0.95, 1.05) + img.mean()
    if rng.random() < style.bubble_prob:
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.circle(img, c, int(rng.uniform(0.02, 0.06) * min(h, w)), (245, 245, 245), 1, cv2.LINE_AA)
    if rng.random() < style.ruler_prob:
        y0 = int(h * rng.uniform(0.85, 0.95))
        for i in range(0, w, max(w // 30, 3)):
            cv2.line(img, (i, y0), (i, y0 + (6 if i % 5 == 0 else 3)), (30, 30, 30), 1)
    return img


def _shades(style: SourceStyle, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Vignetting: darker corners everywhere, sometimes the dermoscope's black border."""
    h, w = xx.shape
    rr = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    shades = [(1 - 0.18 * np.clip(rr - 0.5, 0, None))[..., None]]
    if rng.random() < style.vignette_prob:
        shades.append((1 / (1 + np.exp((rr - 1.05) * 25)))[..., None])
    return shades


def render_with_truth(
    lesion: Lesion,
    style: SourceStyle,
    width: int,
    height: int,
    rng: np.random.Generator,
    truth: bool = True,
    skin_rgb: tuple[int, int, int] | None = None,
) -> tuple[np.ndarray, Truth | None]:
    """`render`, and (truth=True) its hairless twin drawn from the same random draws.

    The random stream is the same either way, so the versioned demo files do not depend on it; the
    helpers draw from it in this order (skin, pose, pigment, artefacts, hairs, vignette, sensor noise)."""
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = _skin(h, w, style, skin_rgb, rng)
    pose = _pose(lesion, h, w, xx, yy, rng)
    pig = _pigment(lesion, style, skin_rgb, pose, xx, yy, rng)
    img = img * (1 - pose.inside[..., None]) + pig * pose.inside[..., None]
    clean = np.clip(_artefacts(img, style, rng), 0, 255).astype(np.uint8)
    hair = clean.copy()
    _draw_hairs(hair, int(rng.poisson(style.hair_mean)), rng)
    shades = _shades(style, xx, yy, rng)
    noise = rng.normal(0, 2.0, (h, w, 3)).astype(np.float32)

    def finish(a: np.ndarray) -> np.ndarray:  # optics, then the vignette
        a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), style.blur)
        for s in shades:  # one product at a time, as the versioned demo files were made
            a *= s
        return a

    photo = finish(hair)
    out = np.clip(photo + noise, 0, 255).astype(np.uint8)
    if not truth:
        return out, None
    without = finish(clean)
    gray = lambda a: a @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    return out, Truth(
        hairless=np.clip(without + noise, 0, 255).astype(np.uint8),
        hair=gray(without) - gray(photo) >= HAIR_CONTRAST,
        lesion=pose.inside > 0.5,
    )
