"""Data cut short that a decoder would fill in without a word: JPEG scans, PNG rows."""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dermsynth.data.records import TRUNCATED, ImageProblem

# --- JPEG: is the scan data whole? ------------------------------------------------------------------
# libjpeg fills whatever a scan lacks with zeros (flat grey) when it meets a marker early, so a file
# cut short and given an end marker (FF D9) back, as repair tools and Pillow's own LOAD_TRUNCATED_IMAGES
# do, decodes without an error or a warning Pillow passes on. Two ways to tell, both through Pillow:
# - one sequential scan (nearly every camera and archive JPEG): decode the scan data followed by a few
#   zero bytes instead of the end marker. Whole data finishes every row within libjpeg's 8-byte
#   read-ahead; cut data runs out of bytes first and Pillow raises "image file is truncated".
# - several scans (progressive): every scan the frame needs must be present, and decoding with filler
#   bytes (and restart markers, so that the filler reaches every restart interval) before the end
#   marker must give the same pixels at full scale: whole data never reads them, cut data decodes them
#   instead of zeros. At reduced DCT scale a cut in the fine-detail scans would not show.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_SEQUENTIAL_HUFFMAN = {0xC0, 0xC1}
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker: not a stuffed FF 00, a restart or a fill byte
_EOI = b"\xff\xd9"
_PAD = b"\x00" * 8  # libjpeg-turbo reads at most 57 bits ahead
_FILLER = bytes((37 * i + 11) % 254 + 1 for i in range(509))  # varied bits without an FF: no marker in it


@dataclass
class JpegLayout:
    sof: int
    components: tuple[int, ...]
    scans: list[tuple[tuple[int, ...], int, int, int]]  # (components, Ss, Se, Al) of each scan
    scan_start: int  # where the last scan's entropy-coded data starts
    scan_end: int | None  # where it ends when an end marker follows; else None


def jpeg_layout(data: bytes) -> JpegLayout | None:
    """The frame and scans of a JPEG from its markers (segments by their lengths, scan data up to the next
    marker); None when the marker structure cannot be followed (Pillow's verdict then stands)."""
    if data[:2] != b"\xff\xd8":
        return None
    n, pos = len(data), 2
    layout = JpegLayout(0, (), [], 0, None)
    end = None
    while pos + 2 <= n:
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips them, so do we
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 2 > n:
                break
        while pos + 2 < n and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        m = data[pos + 1]
        if m == 0xD9:
            layout.scan_end = end
            return layout
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            pos += 2
            continue
        if m == 0xD8 or pos + 4 > n:
            return None
        seg = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + seg]
        if seg < 2 or len(body) < seg - 2:
            return layout  # a segment cut short: no end marker follows the scans
        pos += 2 + seg
        if m in _SOF:
            if len(body) < 6 or len(body) < 6 + 3 * body[5]:
                return None
            layout.sof, layout.components = m, tuple(body[6 + 3 * i] for i in range(body[5]))
        elif m == 0xDA:
            ns = body[0] if body else 0
            if not ns or len(body) < 4 + 2 * ns:
                return None
            layout.scans.append((tuple(body[1 + 2 * i] for i in range(ns)), body[1 + 2 * ns], body[2 + 2 * ns],
                                 body[3 + 2 * ns] & 15))
            layout.scan_start = pos
            found = _SCAN_END.search(data, pos)
            if found is None:
                return layout
            end = pos = found.start()
            while end > layout.scan_start and data[end - 1] == 0xFF:  # fill bytes belong to the marker
                end -= 1
    return layout


def _missing_scans(layout: JpegLayout) -> str:
    """'' when the scans hold every component (and, progressive, every coefficient to full precision)."""
    if not layout.scans:
        return "JPEG holds no image data (no scan)"
    for c in layout.components:
        mine = [s for s in layout.scans if c in s[0]]
        if not mine:
            return f"JPEG lacks the scan of component {c} (cut short?)"
        if layout.sof in _PROGRESSIVE:
            done = set().union(*(range(ss, se + 1) for _, ss, se, al in mine if al == 0))
            if len(done & set(range(64))) < 64:
                return f"progressive JPEG lacks the scans that complete component {c} (cut short?)"
    return ""


def _probe_tail(data: bytes, layout: JpegLayout) -> bytes:
    """Filler, then restart markers in the order the last scan expects them, each with filler, then EOI."""
    last = max(range(8), key=lambda j: data.rfind(bytes((0xFF, 0xD0 + j)), layout.scan_start, layout.scan_end))
    if data.rfind(bytes((0xFF, 0xD0 + last)), layout.scan_start, layout.scan_end) < 0:
        last = -1  # no restart marker yet: RST0 comes next
    rst = b"".join(bytes((0xFF, 0xD0 + (last + i) % 8)) + _FILLER[:40] for i in range(1, 65))
    return _FILLER + rst + _EOI


def _open_jpeg(data: bytes, draft: tuple[int, int] | None) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=["JPEG"])
    if draft:
        im.draft(None, draft)
    im.load()
    return im


_CUT_JPEG = "JPEG scan data ends before the image does (cut short; the rest would decode flat grey)"


def load_jpeg(data: bytes, draft: tuple[int, int] | None) -> Image.Image:
    """The decoded JPEG (at DCT scale `draft` if it has one scan), or TRUNCATED when its scan data is not whole."""
    layout = jpeg_layout(data)
    if layout is None or layout.scan_end is None:
        return _open_jpeg(data, draft)  # no end marker after the scans: libjpeg runs out of data, Pillow raises
    if gap := _missing_scans(layout):
        raise ImageProblem(TRUNCATED, gap)
    scan_data = data[: layout.scan_end]
    if layout.sof in _SEQUENTIAL_HUFFMAN and len(layout.scans) == 1:
        try:
            return _open_jpeg(scan_data + _PAD, draft)
        except OSError as e:
            raise ImageProblem(TRUNCATED, f"{_CUT_JPEG} ({e})") from e
    im = _open_jpeg(data, None)
    try:
        probe = _open_jpeg(scan_data + _probe_tail(data, layout), None)
        same = probe.mode == im.mode and np.array_equal(np.asarray(probe), np.asarray(im))
    except Exception:  # the filler broke the decoder: it was read as scan data
        same = False
    if not same:
        raise ImageProblem(TRUNCATED, _CUT_JPEG)
    return im


# --- PNG: does the image data fill every row? -------------------------------------------------------
# Pillow fills rows the zlib stream does not hold with black and raises nothing, when the stream itself
# is whole (a header that declares more rows than were written).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_shortfall(data: bytes) -> str:
    """'' when the PNG's image data holds every row its header declares, else what it lacks."""
    if data[12:16] != b"IHDR" or len(data) < 29:
        return ""
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = _PNG_CHANNELS.get(colour, 0) * depth
    need = 0
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        pw, ph = max(0, -(-(w - x0) // dx)), max(0, -(-(h - y0) // dy))
        if pw and ph:
            need += ph * (1 + (pw * bits + 7) // 8)  # one filter byte per row
    idat, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    inflate, got, rest = zlib.decompressobj(), 0, b"".join(idat)
    try:
        while rest and got < need:  # count the inflated bytes in bounded steps, keeping none
            got += len(inflate.decompress(rest, 1 << 20))
            rest = inflate.unconsumed_tail
    except zlib.error as e:
        return f"PNG image data is corrupt ({e})"
    if got >= need:
        return ""
    if interlace:
        return f"PNG image data holds {got} of the {need} bytes its {w}x{h} header declares (cut short?)"
    return f"PNG image data ends after {got // (need // h)} of the {h} rows its header declares (cut short?)"
