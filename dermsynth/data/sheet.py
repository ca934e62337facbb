"""Before/after sheets of preprocessing: what it found and what it made, one photograph a row.

Columns: the photograph with the field of view (blue), the lesion's outline (green) and the crop
(yellow) drawn on it; the hairs found (red) over the photograph; the prepared image. A header row
names them (wrapped to the column, so a reader needs no legend elsewhere), and each row is captioned
with the image's name, its centring and crop findings.
"""
from __future__ import annotations

import cv2
import numpy as np

from dermsynth.data.preprocess import PrepConfig, prepare_image, to_working

TILE = 200
CAPTION = 16
HEADER_SCALE = 0.36


def column_headers(size: int, expert: bool = False) -> tuple[str, str, str]:
    """What each column shows, in the order of prepare_image's steps; `expert`: a magenta outline is drawn."""
    return ("1 photograph: field of view (blue), lesion found (green), crop (yellow)"
            + (", expert's lesion (magenta)" if expert else ""),
            "2 hairs found (red), painted over before the lesion is looked for",
            f"3 prepared: the crop without hairs, rim filled from skin, {size} px")


def wrap_to_width(text: str, width: int, scale: float = HEADER_SCALE) -> list[str]:
    """Greedy word wrap to `width` pixels of OpenCV's Hershey font, so no header runs into the next column."""
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def _fit(img: np.ndarray, tile: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = tile / max(h, w)
    small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(small, 0, tile - small.shape[0], 0, tile - small.shape[1], cv2.BORDER_CONSTANT,
                              value=(255, 255, 255))


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float = 0.38) -> None:
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _outline(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], width: int) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, colour, width)


def sheet_row(raw: np.ndarray, cfg: PrepConfig, name: str, tile: int = TILE,
              truth: np.ndarray | None = None) -> np.ndarray:
    work = to_working(raw, cfg.working_short)  # the working image prepare_image sees
    p = prepare_image(work, cfg)
    width = max(2, min(work.shape[:2]) // 150)
    drawn = work.copy()
    _outline(drawn, p.fov, (40, 90, 255), width)
    if p.lesion.mask.any():
        _outline(drawn, p.lesion.mask, (0, 200, 0), width)
    if truth is not None:  # an expert's mask, for the development set
        _outline(drawn, cv2.resize(truth.astype(np.uint8), (work.shape[1], work.shape[0]),
                                   interpolation=cv2.INTER_NEAREST), (255, 0, 255), width)
    x0, y0, x1, y1 = p.box
    cv2.rectangle(drawn, (x0, y0), (x1 - 1, y1 - 1), (255, 220, 0), width)
    hairs = work.copy()
    if p.hair is not None:
        hairs[p.hair > 0] = (255, 0, 0)
    final = cv2.resize(p.image, (tile, tile), interpolation=cv2.INTER_NEAREST if p.image.shape[0] < tile
                       else cv2.INTER_AREA)
    row = np.hstack([_fit(drawn, tile), _fit(hairs, tile), final])
    cap = np.full((CAPTION, row.shape[1], 3), 255, np.uint8)
    ita = "n/a" if p.ita != p.ita else f"{p.ita:.0f}"
    _text(cap, f"{name}: {p.centring} (conf {p.confidence:.2f}), crop {p.crop_px} px x{p.upscale:.2f}, "
               f"rim filled {p.rim_filled:.1%}, ITA {ita}", 4, CAPTION - 4)
    return np.vstack([cap, row])


def before_after(raws: list[np.ndarray], cfg: PrepConfig, names: list[str], tile: int = TILE,
                 truths: list[np.ndarray | None] | None = None) -> np.ndarray:
    """One RGB sheet: a header, then a captioned row per photograph (`truths`: expert masks, magenta)."""
    truths = truths or [None] * len(raws)
    rows = [sheet_row(r, cfg, n, tile, t) for r, n, t in zip(raws, names, truths)]
    headers = [wrap_to_width(h, tile - 8) for h in column_headers(cfg.size, any(t is not None for t in truths))]
    head = np.full((max(map(len, headers)) * CAPTION + 4, 3 * tile, 3), 255, np.uint8)
    for i, lines in enumerate(headers):
        for j, line in enumerate(lines):
            _text(head, line, i * tile + 4, (j + 1) * CAPTION - 2, HEADER_SCALE)
    head[-2:, :] = 160  # a rule under the headers: they name the columns, not the first row
    return np.vstack([head, *rows])
