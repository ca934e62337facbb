"""What a source reader returns: usable records, and quarantined items with a reason."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def is_safe_id(image_id: str) -> bool:
    return bool(_SAFE_ID.match(image_id)) and ".." not in image_id


def safe_join(root: Path, name: str) -> Path:
    """`root / name`, refusing any name that resolves outside `root`."""
    root = root.resolve()
    p = (root / name).resolve()
    if p != root and root not in p.parents:
        raise UserValueError(f"{name!r} escapes {root}")
    return p


def clean(value) -> str:
    """A metadata cell as a stripped string; NaN and None become ''."""
    if value is None:
        return ""
    s = str(value).strip()
    return "" if s.lower() in ("nan", "none", "null") else s


def index_images(folder: Path) -> dict[str, list[Path]]:
    """Image files below `folder`, by file stem (ids are stems in every archive layout)."""
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            out.setdefault(p.stem, []).append(p)
    return out


def resolve_rows(
    source: str,
    rows: list[tuple[str, str | None, str, dict]],
    raw_root: Path,
    index: dict[str, list[Path]] | None,
) -> SourceResult:
    """Turn parsed metadata rows into records, quarantining what cannot be used.

    `rows` holds (image_id, label or None, why-not-label, extra fields). Handles the checks every
    file-based layout shares: unsafe ids, duplicate and conflicting rows, missing files and
    orphan images. With `index=None` the caller resolves files itself (hdf5).
    """
    res = SourceResult()
    by_id: dict[str, list[tuple[str | None, str, dict]]] = {}
    for image_id, label, why, extra in rows:
        by_id.setdefault(image_id, []).append((label, why, extra))
    used: set[str] = set()
    for image_id, entries in by_id.items():
        if not is_safe_id(image_id):
            for _ in entries:
                res.quarantined.append(Quarantined(source, image_id, UNSAFE_ID, "", "id is not a plain file name"))
            continue
        used.add(image_id)
        paths = index.get(image_id, []) if index is not None else []
        file = paths[0].relative_to(raw_root).as_posix() if paths else ""
        # Rows of one id that disagree on the label or on the finer diagnosis are not trusted.
        labels = {(str(lab), extra.get("diagnosis", "")) for lab, _, extra in entries}
        if len(labels) > 1:
            for _ in entries:
                res.quarantined.append(Quarantined(source, image_id, CONFLICTING, file,
                                                   f"rows disagree: {sorted(map(str, labels))}"))
            continue
        label, why, extra = entries[0]
        for _ in entries[1:]:
            res.quarantined.append(Quarantined(source, image_id, DUPLICATE_ROW, file, "same id listed again"))
        if label is None:
            reason = CONFLICTING if why.startswith("conflict") else UNKNOWN_LABEL
            res.quarantined.append(Quarantined(source, image_id, reason, file, why))
            continue
        if index is not None and not paths:
            res.quarantined.append(Quarantined(source, image_id, MISSING_FILE, "", "listed in metadata, no image file"))
            continue
        res.records.append(Record(source=source, image_id=image_id, label=label,
                                  lesion_id=extra.get("lesion_id", ""), patient_id=extra.get("patient_id", ""),
                                  file=file, diagnosis=extra.get("diagnosis", ""),
                                  **{k: extra[k] for k in ("sex", "age_band", "site") if k in extra}))
    if index is not None:
        for stem, paths in index.items():
            if stem not in used:
                for p in paths:
                    res.quarantined.append(Quarantined(source, stem, ORPHAN, p.relative_to(raw_root).as_posix(),
                                                       "image file with no metadata row"))
    return res
