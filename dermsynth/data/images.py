"""Decoding raw images: every archive's quirks become RGB uint8, or a named problem."""
from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dermsynth.data.records import CORRUPT_HDF5, MISSING_FILE, NOT_IMAGE, TRUNCATED, UNREADABLE, safe_join

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated download must fail, not decode half grey


class ImageProblem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def to_rgb(im: Image.Image) -> np.ndarray:
    """RGB uint8 from any PIL mode: EXIF rotation applied, 16-bit scaled, CMYK/palette/alpha converted."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


def decode(data: bytes, what: str, min_short: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """The RGB image and its full upright size (w, h).

    `min_short` > 0: a JPEG at least twice that on its short side is decoded at 1/2, 1/4 or 1/8 scale
    (libjpeg's DCT scaling, never below `min_short`), which is several times faster for the large
    ISIC 2020 photographs and still entropy-decodes every byte, so truncation is still caught."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if (im.getexif().get(0x0112) or 1) in _SWAPS_SIDES:
                w, h = h, w
            if im.format == "JPEG" and min_short and min(w, h) >= 2 * min_short:
                k = min_short / min(w, h)
                im.draft(None, (max(1, int(im.size[0] * k)), max(1, int(im.size[1] * k))))
            im.load()
    except UnidentifiedImageError as e:
        raise ImageProblem(NOT_IMAGE, f"{what}: not a decodable image format") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageProblem(UNREADABLE, f"{what}: {e}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageProblem(TRUNCATED, f"{what}: {e}") from e
    return to_rgb(im), (w, h)


_h5_cache: dict[Path, h5py.File] = {}


def read_bytes(raw_root: Path, file: str) -> bytes:
    """The encoded bytes behind a manifest `file` reference (a path, or `file.hdf5#key`)."""
    if "#" in file:
        rel, key = file.split("#", 1)
        path = safe_join(raw_root, rel)
        if path not in _h5_cache:  # one handle per worker process; h5py opens are not free
            _h5_cache[path] = h5py.File(path, "r")
        try:
            v = _h5_cache[path][key][()]
        except Exception as e:
            raise ImageProblem(CORRUPT_HDF5, f"{file}: {e}") from e
        if isinstance(v, np.void):
            return v.tobytes()
        if isinstance(v, np.ndarray):
            return v.tobytes()
        return bytes(v)
    path = safe_join(raw_root, file)
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ImageProblem(MISSING_FILE, f"{file}: {e}") from e
    except OSError as e:
        raise ImageProblem(UNREADABLE, f"{file}: {e}") from e


def load_image(raw_root: Path, file: str, min_short: int = 0) -> np.ndarray:
    """The RGB image behind a manifest `file`; see `decode` for `min_short`."""
    return load_image_and_digest(raw_root, file, min_short)[0]


def load_image_and_digest(raw_root: Path, file: str, min_short: int = 0) -> tuple[np.ndarray, str, tuple[int, int]]:
    """The RGB image, the SHA-256 of its encoded bytes (what finds byte-identical copies) and its full size."""
    data = read_bytes(raw_root, file)
    try:
        img, size = decode(data, file, min_short)
        return img, hashlib.sha256(data).hexdigest(), size
    except ImageProblem as e:
        if "#" in file:  # inside an hdf5 container every decoding failure is a corrupt entry
            raise ImageProblem(CORRUPT_HDF5, e.detail) from e
        raise
