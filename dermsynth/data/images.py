"""Decoding raw images: every archive's quirks become RGB uint8, or a named problem.

Raw archives are untrusted input. Bytes are only read from inside their source folder (links out are
refused), never more than `ingest.max_image_bytes` of them, and only decoded by the allow-listed
Pillow plugins (not Ghostscript for an EPS named .jpg, say); an image declaring more than
`ingest.max_pixels` pixels is not decoded at all. Data cut short is refused even where the decoder
would fill the missing part grey without a word (a JPEG with an end marker appended, a PNG whose
header declares more rows than its data holds).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dermsynth.data.hdf5 import read_hdf5
from dermsynth.data.records import (CORRUPT_HDF5, MISSING_FILE, NOT_IMAGE, TOO_LARGE, TRUNCATED, UNREADABLE,
                                    ImageProblem, UnsafePath, raw_path)
from dermsynth.data.truncation import load_jpeg, png_shortfall
from dermsynth.errors import UserValueError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated download must fail, not decode half grey

# The formats dermoscopy archives use. Not GIF: 256 colours at most, which no dermoscopy archive ships
# and which would distort the colour measurements; not EPS/PDF (Ghostscript) nor the many rarer plugins.
ALLOWED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")
MAX_IMAGE_BYTES = 64 * 2**20  # ingest.max_image_bytes' default: ISIC 2020's 6000 x 4000 JPEGs are under 10 MB
MAX_PIXELS = 100_000_000  # ingest.max_pixels' default: 4x the largest ISIC photograph


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

# Starts of the allowed formats: such data that Pillow cannot identify is damaged, not some other file.
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _looks_like(data: bytes) -> str:
    for sig, fmt in _SIGNATURES:
        if data.startswith(sig):
            return fmt
    return "WEBP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else ""


@contextlib.contextmanager
def _strict_pillow(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb check at `max_pixels` (it reads the module global when a file is
    opened; a decode runs one image at a time per worker process) and no padding of truncated files,
    whatever another module set."""
    before = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_pixels, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # damaged metadata ("Corrupt EXIF data"): the image is judged by decoding it, not by a warning
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = before


def decode(data: bytes, what: str, min_short: int = 0,
           max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, tuple[int, int]]:
    """The RGB image and its full upright size (w, h), or an ImageProblem naming `what` and the reason.

    `min_short` > 0: a JPEG at least twice that on its short side is decoded at 1/2, 1/4 or 1/8 scale
    (libjpeg's DCT scaling, never below `min_short`), which is several times faster for the large
    ISIC 2020 photographs and still entropy-decodes every byte, so truncation is still caught.
    An image declaring more than `max_pixels` pixels is refused from its header, before decoding."""
    try:
        with _strict_pillow(max_pixels):
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            w, h = im.size
            if w * h > max_pixels:
                raise ImageProblem(TOO_LARGE, f"{w}x{h} = {w * h} pixels > ingest.max_pixels={max_pixels}")
            if (im.getexif().get(0x0112) or 1) in _SWAPS_SIDES:
                w, h = h, w
            if im.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG with a second picture appended
                draft = None
                if min_short and min(w, h) >= 2 * min_short:
                    k = min_short / min(w, h)
                    draft = (max(1, int(im.size[0] * k)), max(1, int(im.size[1] * k)))
                im = load_jpeg(data, draft)
            else:
                im.load()
                if im.format == "PNG" and (gap := png_shortfall(data)):
                    raise ImageProblem(TRUNCATED, gap)
            return to_rgb(im), (w, h)
    except ImageProblem as e:
        raise ImageProblem(e.reason, f"{what}: {e.detail}") from e
    except UnidentifiedImageError as e:
        if fmt := _looks_like(data):
            raise ImageProblem(TRUNCATED, f"{what}: starts like a {fmt} file but cannot be read") from e
        raise ImageProblem(NOT_IMAGE, f"{what}: not one of the image formats read "
                                      f"({', '.join(ALLOWED_FORMATS)})") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        n = re.search(r"\((\d+) pixels\)", str(e))  # Pillow names the size, and a limit of its own making
        raise ImageProblem(TOO_LARGE, f"{what}: {n.group(1) + ' pixels' if n else 'more pixels'} > "
                                      f"ingest.max_pixels={max_pixels}") from e
    except Exception as e:  # plugins raise anything for damaged data: OSError, SyntaxError, struct.error, IndexError...
        raise ImageProblem(TRUNCATED, f"{what}: {type(e).__name__}: {e}") from e


# --- reading the encoded bytes ------------------------------------------------------------------------
def _real_path(raw_root: Path, file: str) -> Path:
    try:
        return raw_path(raw_root, file)
    except (UserValueError, RuntimeError) as e:  # RuntimeError: a loop of links
        raise UnsafePath(f"{file}: {e}") from e


def _read_file(path: Path, file: str, max_bytes: int) -> bytes:
    """At most `max_bytes` of a regular file, judged by its size before a byte is read (a 1 GB sparse
    file costs nothing to make); never a FIFO or device, which could block or never end."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)  # NOFOLLOW: the path was resolved, so a link here was put there since
    except FileNotFoundError as e:
        raise ImageProblem(MISSING_FILE, f"{file}: {e}") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePath(f"{file}: became a link while being read") from e
        raise ImageProblem(UNREADABLE, f"{file}: {e}") from e
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageProblem(UNREADABLE, f"{file}: not a regular file")
        if st.st_size > max_bytes:
            raise ImageProblem(TOO_LARGE, f"{file}: {st.st_size} bytes > ingest.max_image_bytes={max_bytes}")
        try:
            data = fh.read(max_bytes + 1)
        except OSError as e:
            raise ImageProblem(UNREADABLE, f"{file}: {e}") from e
    if len(data) > max_bytes:  # it grew after the size was checked
        raise ImageProblem(TOO_LARGE, f"{file}: more than ingest.max_image_bytes={max_bytes} bytes")
    return data


def read_bytes(raw_root: Path, file: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The encoded bytes behind a manifest `file` reference (a path, or `file.hdf5#key`), no more than
    `max_bytes` of them, from inside its source folder only."""
    if "#" in file:
        rel, key = file.split("#", 1)
        return read_hdf5(_real_path(raw_root, rel), key, file, max_bytes)
    return _read_file(_real_path(raw_root, file), file, max_bytes)


def load_image(raw_root: Path, file: str, min_short: int = 0) -> np.ndarray:
    """The RGB image behind a manifest `file`; see `decode` for `min_short`."""
    return load_image_and_digest(raw_root, file, min_short)[0]


def load_image_and_digest(raw_root: Path, file: str, min_short: int = 0, max_bytes: int = MAX_IMAGE_BYTES,
                          max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str, tuple[int, int]]:
    """The RGB image, the SHA-256 of its encoded bytes (what finds byte-identical copies) and its full size."""
    data = read_bytes(raw_root, file, max_bytes)
    try:
        img, size = decode(data, file, min_short, max_pixels)
        return img, hashlib.sha256(data).hexdigest(), size
    except ImageProblem as e:
        if "#" in file and e.reason != TOO_LARGE:  # inside an hdf5 container every decoding failure is a corrupt entry
            raise ImageProblem(CORRUPT_HDF5, e.detail) from e
        raise
