"""What a source reader returns: usable records, and quarantined items with a reason."""
from __future__ import annotations

import filecmp
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from dermsynth.errors import UserError, UserValueError

LABELS = ("benign", "malignant")

# The fixed vocabulary of quarantine reasons (docs/contracts.md, reports/quarantine.csv).
UNREADABLE = "unreadable"
TRUNCATED = "truncated or corrupt"
NOT_IMAGE = "not an image"
MISSING_FILE = "missing file"
UNKNOWN_LABEL = "unknown label"
CONFLICTING = "conflicting labels"
TOO_SMALL = "too small"
UNSAFE_ID = "unsafe id"
DUPLICATE_ROW = "duplicate row"
ORPHAN = "orphan image"
CORRUPT_HDF5 = "corrupt hdf5 entry"
UNSAFE_PATH = "unsafe path"  # a link that leads out of its source folder: never read
UNSAFE_HDF5 = "unsafe hdf5 entry"  # bytes that would come from outside the hdf5 file (links, virtual, external)
TOO_LARGE = "too large"  # more bytes or pixels than ingest.max_image_bytes / ingest.max_pixels: never decoded
DUPLICATE_FILE = "duplicate file"  # a second file for an image id that already has one
# Set aside by choice, not broken (ISIC Archive downloads, dermsynth.data.sources.isic_archive): each is
# listed like any other quarantined item, but does not count towards ingest.max_quarantine_fraction.
INDETERMINATE = "indeterminate diagnosis"  # diagnosis_1 Indeterminate and ingest.indeterminate: quarantine
SYNTHETIC = "synthetic image in archive"  # image_manipulation synthetic: never trained on as a real image
ALTERED = "altered image in archive"  # image_manipulation altered and ingest.altered: quarantine
IMAGE_TYPE = "image type"  # followed by the type, e.g. "image type 'clinical: close-up'" (ingest.image_types)
DOWNLOADED_AGAIN = "downloaded again"  # the same isic_id in a second download folder: one file is used
BY_CHOICE = (INDETERMINATE, SYNTHETIC, ALTERED, DOWNLOADED_AGAIN)


def by_choice(reason: str) -> bool:
    """Whether a quarantine reason is a choice (a policy parameter, a repeated download), not a defect."""
    return reason in BY_CHOICE or reason.startswith(IMAGE_TYPE + " ")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# An id becomes a file name: one plain path component, nothing that could climb out of a folder.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class IngestError(UserError, RuntimeError):
    """A source cannot be read at all (its metadata file is missing columns or unparsable)."""


@dataclass
class Record:
    source: str
    image_id: str
    label: str
    lesion_id: str
    patient_id: str
    file: str  # relative to the raw root; "<file.hdf5>#<key>" for an hdf5 entry
    diagnosis: str = ""
    sex: str = "unknown"  # harmonised (dermsynth.data.subgroups); unknown stays unknown
    age_band: str = "unknown"
    site: str = "unknown"
    # as the ISIC Archive records them (isic_archive; copied from it onto a republished copy), else empty
    fitzpatrick_skin_type: str = ""
    # MILK10k's own skin tone scale (0 very dark .. 5 very light, not Fitzpatrick); external test sets only
    skin_tone_class: str = ""
    copyright_license: str = ""
    attribution: str = ""


# Record fields a reader's `extra` dict may set beyond the ids, the label and the diagnosis
EXTRA_FIELDS = ("sex", "age_band", "site", "fitzpatrick_skin_type", "skin_tone_class", "copyright_license",
                "attribution")


@dataclass
class Quarantined:
    source: str
    image_id: str
    reason: str
    file: str = ""
    detail: str = ""

    def row(self) -> dict:
        return asdict(self)


@dataclass
class SourceResult:
    records: list[Record] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    same_image: list[tuple[str, str]] = field(default_factory=list)  # id pairs the archive lists as duplicates
    empty_rows: int = 0  # metadata rows with every field empty (spreadsheet exports), skipped: not items


@dataclass
class ImageIndex:
    """The image files of one source folder by stem, and its links that lead out of it (by stem too)."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    unsafe: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)  # (link, what it points at)


def is_safe_id(image_id: str) -> bool:
    return bool(_SAFE_ID.match(image_id)) and ".." not in image_id


def safe_join(root: Path, name: str) -> Path:
    """`root / name`, refusing any name that resolves outside `root`."""
    root = root.resolve()
    p = (root / name).resolve()
    if p != root and root not in p.parents:
        raise UserValueError(f"{name!r} escapes {root}")
    return p


def inside(root: Path, p: Path) -> bool:
    """Whether the resolved `p` is the resolved `root` or below it."""
    root, p = root.resolve(), p.resolve()
    return p == root or root in p.parents


def raw_path(raw_root: Path, file: str) -> Path:
    """The real path of a manifest `file` (`<source>/<path>`, relative to the raw root).

    The raw root and the source folder may be links (a 10 GB archive is often kept on another disk as
    `data/raw/ham10000 -> /storage/ham10000`) and are followed; nothing below the source folder may
    lead out of it (a link to /etc/passwd inside the archive would otherwise be read as an image)."""
    parts = PurePosixPath(file).parts
    if len(parts) < 2 or file.startswith("/") or parts[0] in (".", ".."):
        return safe_join(raw_root, file)  # no source folder to follow: the raw root must hold it
    return safe_join(raw_root / parts[0], "/".join(parts[1:]))


def outside_link(folder: Path, p: Path) -> str:
    """'' when `p` stays inside `folder` (both resolved), else what the link leads to, for the detail."""
    try:
        return "" if inside(folder, p) else str(p.resolve())
    except (RuntimeError, OSError) as e:  # a loop of links (RuntimeError before Python 3.13)
        return f"nowhere ({e})"


def clean(value) -> str:
    """A metadata cell as a stripped string; NaN and None become ''."""
    if value is None:
        return ""
    s = str(value).strip()
    return "" if s.lower() in ("nan", "none", "null") else s


def index_images(folder: Path) -> ImageIndex:
    """Image files below `folder` by file stem (ids are stems in every archive layout).

    `folder` itself may be a link (followed); links below it are checked, not trusted: a link to a
    file or folder outside the resolved `folder` is listed in `unsafe` and never read, a link to a
    folder inside it is not descended (its files are listed under their own path), and a link to a
    file inside it under the same stem is that file, not a second copy."""
    root = folder.resolve()
    index = ImageIndex()
    found: list[tuple[bool, str, Path, Path]] = []  # (is a link, sort key, path as listed, real path)
    for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False: links are judged below
        d = Path(dirpath)
        real_dir = d.resolve()
        for name in dirnames:
            p = d / name
            if p.is_symlink() and (target := outside_link(root, p)):
                index.unsafe.setdefault(name, []).append((p, f"link to the folder {target}"))
        for name in filenames:
            p = d / name
            if name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if not p.is_symlink():
                found.append((False, str(p), p, real_dir / name))
            elif target := outside_link(root, p):
                index.unsafe.setdefault(p.stem, []).append((p, f"link to {target}"))
            else:
                found.append((True, str(p), p, p.resolve()))
    seen: set[tuple[str, Path]] = set()
    # real files before links to them, then path order: the listed path of a file is its own
    for _, _, p, real in sorted(found, key=lambda f: f[:2]):
        if (p.stem, real) not in seen:
            seen.add((p.stem, real))
            index.files.setdefault(p.stem, []).append(p)
    for paths in index.files.values():
        paths.sort()
    return index


def _same_bytes(a: Path, b: Path, limit: int = 64 * 2**20) -> str:
    """How file `b` compares with `a`, for the detail of a duplicate file (huge files are not read)."""
    try:
        sa, sb = a.stat().st_size, b.stat().st_size
        if sa != sb:
            return "different bytes"
        if sa > limit:
            return "same size, not compared"
        return "identical bytes" if filecmp.cmp(a, b, shallow=False) else "different bytes"
    except OSError as e:
        return f"not compared ({e})"


def _resolve_id(source: str, image_id: str, entries: list[tuple[str | None, str, dict]], paths: list[Path],
                index: ImageIndex | None, rel: Callable[[Path], str]) -> tuple[Record | None, list[Quarantined]]:
    """One safe id's rows and files: its record (or None) and everything of it set aside, each with its reason."""
    out: list[Quarantined] = []
    file = rel(paths[0]) if paths else ""
    # Two files for one id: the first (in path order) is the image, every other is set aside, so that
    # a second, different image never vanishes unreported.
    for p in paths[1:]:
        out.append(Quarantined(source, image_id, DUPLICATE_FILE, rel(p),
                               f"{rel(p)}: a second file for this id ({_same_bytes(paths[0], p)}); {file} is used"))
    # Rows of one id that disagree on the label or on the finer diagnosis are not trusted.
    labels = {(str(lab), extra.get("diagnosis", "")) for lab, _, extra in entries}
    if len(labels) > 1:
        out += [Quarantined(source, image_id, CONFLICTING, file, f"rows disagree: {sorted(map(str, labels))}")
                for _ in entries]
        return None, out
    label, why, extra = entries[0]
    out += [Quarantined(source, image_id, DUPLICATE_ROW, file, "same id listed again") for _ in entries[1:]]
    if label is None:
        # a reader may name the reason itself (a row set aside by a policy, not for its label)
        reason = extra.get("reason") or (CONFLICTING if why.startswith("conflict") else UNKNOWN_LABEL)
        return None, out + [Quarantined(source, image_id, reason, file, why)]
    if index is not None and not paths:
        if image_id not in index.unsafe:  # an unsafe link already stands for this row
            out.append(Quarantined(source, image_id, MISSING_FILE, "", "listed in metadata, no image file"))
        return None, out
    return Record(source=source, image_id=image_id, label=label, lesion_id=extra.get("lesion_id", ""),
                  patient_id=extra.get("patient_id", ""), file=file, diagnosis=extra.get("diagnosis", ""),
                  **{k: extra[k] for k in EXTRA_FIELDS if k in extra}), out


def resolve_rows(
    source: str,
    rows: list[tuple[str, str | None, str, dict]],
    raw_root: Path,
    index: ImageIndex | None,
) -> SourceResult:
    """Turn parsed metadata rows into records, quarantining what cannot be used.

    `rows` holds (image_id, label or None, why-not-label, extra fields). Handles the checks every
    file-based layout shares: unsafe ids, duplicate and conflicting rows, missing, duplicate and
    unsafe files and orphan images. With `index=None` the caller resolves files itself (hdf5).
    Every file is accounted for: a row's first file is the row's, every other one has its own reason.
    """
    res = SourceResult()

    def rel(p: Path) -> str:
        return p.relative_to(raw_root).as_posix()

    by_id: dict[str, list[tuple[str | None, str, dict]]] = {}
    for image_id, label, why, extra in rows:
        by_id.setdefault(image_id, []).append((label, why, extra))
    files = index.files if index is not None else {}
    # A link out of the source folder is quarantined whatever its metadata says: it is never read.
    for stem, links in (index.unsafe.items() if index is not None else ()):
        for p, target in links:
            res.quarantined.append(Quarantined(source, stem, UNSAFE_PATH, rel(p),
                                               f"{rel(p)}: {target}, outside the source folder"))
    used: set[str] = set()
    for image_id, entries in by_id.items():
        if not is_safe_id(image_id):
            for _ in entries:
                res.quarantined.append(Quarantined(source, image_id, UNSAFE_ID, "", "id is not a plain file name"))
            continue
        used.add(image_id)
        record, set_aside = _resolve_id(source, image_id, entries, files.get(image_id, []), index, rel)
        res.quarantined.extend(set_aside)
        if record is not None:
            res.records.append(record)
    for stem, paths in files.items():
        if stem not in used:
            for p in paths:
                res.quarantined.append(Quarantined(source, stem, ORPHAN, rel(p), "image file with no metadata row"))
    return res


class ImageProblem(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail

    def __reduce__(self):  # raised in a worker process, it reaches the parent whole
        return ImageProblem, (self.reason, self.detail)


class UnsafePath(ImageProblem, ValueError):
    """A file reference that leads out of its source folder (a ValueError too, as `safe_join` raises)."""

    def __init__(self, detail: str):
        super().__init__(UNSAFE_PATH, detail)

    def __reduce__(self):
        return UnsafePath, (self.detail,)
