"""Ingest every raw source found under data/raw into one manifest, quarantining bad inputs.

Metadata problems are found by each source's reader; image problems by decoding every image
once here (in parallel). The result is two tables that together account for every raw item:
the manifest (usable) and the quarantine (with a reason per item).
"""
from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from dermsynth.contracts import DUPLICATES_COLUMNS, MANIFEST_COLUMNS, QUARANTINE_COLUMNS
from dermsynth.data.images import MAX_IMAGE_BYTES, MAX_PIXELS, ImageProblem, load_image_and_digest
from dermsynth.data.records import (CONFLICTING, IMAGE_EXTENSIONS, TOO_SMALL, IngestError, Quarantined, Record,
                                    by_choice)
from dermsynth.data.republished import DEFAULT_PRIORITY, collapse, conflict_rows, split_conflicts
from dermsynth.data.republished import summary as duplicates_summary
from dermsynth.data.sources import ham10000, isic2019, isic2020, isic2024, isic_archive
from dermsynth.data.sources.isic_archive import ArchivePolicy
from dermsynth.parallel import pmap

SOURCES = {m.NAME: m for m in (ham10000, isic2019, isic2020, isic2024, isic_archive)}
# what a folder of each source is recognised by, for the message about a folder no reader recognises
RECOGNISED_BY = {"ham10000": ham10000.METADATA, "isic2019": isic2019.GROUND_TRUTH, "isic2020": isic2020.METADATA,
                 "isic2024": f"{isic2024.METADATA} + {isic2024.IMAGES}",
                 "isic_archive": f"{isic_archive.METADATA} with isic_id"}
# data/raw/external/ holds the external test sets (evaluate.external): never a training source
EXTERNAL_FOLDER = "external"
# files a folder under data/raw holds that would be images if a reader recognised it
IMAGE_FILES = IMAGE_EXTENSIONS + (".hdf5", ".h5")


@dataclass
class Unrecognised:
    """A folder under the raw root that no reader recognises: never read, and named."""

    folder: str  # as found under the raw root
    images: int  # image files (and hdf5 containers) below it
    looks_like: str = ""  # a source whose files it holds (a misnamed folder), or ''

    def message(self, raw_root: Path) -> str:
        hint = (f"it holds {self.looks_like}'s files: rename it to {raw_root / self.looks_like}" if self.looks_like
                else "expected " + "; ".join(f"{n}/ with {f}" for n, f in RECOGNISED_BY.items()))
        return (f"{raw_root / self.folder}: {self.images} image file(s) in a folder no reader recognises ({hint}); "
                f"move it out of {raw_root} if it is not an archive")


class UnrecognisedFolderError(IngestError):
    """Folders under the raw root hold images no reader recognises: their images would be silently left out."""

    def __init__(self, raw_root: Path, folders: list[Unrecognised]):
        super().__init__("\n".join(u.message(raw_root) for u in folders))
        self.folders = folders


@dataclass
class IngestResult:
    manifest: pd.DataFrame
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DUPLICATES_COLUMNS))
    empty_rows: dict[str, int] = field(default_factory=dict)  # all-empty metadata rows skipped, per source
    unrecognised: list[Unrecognised] = field(default_factory=list)  # folders no reader read (no images in them)

    def summary(self) -> dict:
        kept = self.manifest.groupby("source").size().to_dict() if len(self.manifest) else {}
        q = self.quarantine
        by_reason = {s: g.groupby("reason").size().to_dict() for s, g in q.groupby("source")} if len(q) else {}
        total = len(self.manifest) + len(q)
        chosen = int(q["reason"].map(by_choice).sum()) if len(q) else 0
        licences = self.manifest["copyright_license"].astype(str) if "copyright_license" in self.manifest else None
        return {
            "kept": int(len(self.manifest)),
            "quarantined": int(len(q)),
            "quarantined_fraction": round(len(q) / total, 4) if total else 0.0,
            "kept_per_source": {k: int(v) for k, v in kept.items()},
            "quarantined_per_source": {s: {r: int(n) for r, n in d.items()} for s, d in by_reason.items()},
            "labels": {k: int(v) for k, v in self.manifest.groupby("label").size().to_dict().items()} if len(self.manifest) else {},
            **duplicates_summary(self.duplicates),
            "empty_rows": {k: int(v) for k, v in self.empty_rows.items()},
            # set aside by a parameter (ingest.indeterminate, altered, image_types) or downloaded twice: not defects
            "quarantined_by_choice": chosen,
            # kept images by the licence the ISIC Archive records (other sources record none)
            "licences": ({k: int(v) for k, v in licences[licences != ""].value_counts().sort_index().items()}
                         if licences is not None else {}),
            "unrecognised_folders": [asdict(u) for u in self.unrecognised],
        }


def detect_sources(raw_root: Path) -> list[str]:
    """Source folders under `raw_root` recognised by their files (any subset may be present)."""
    found = []
    for name, mod in SOURCES.items():
        folder = raw_root / name
        if folder.is_dir() and mod.detect(folder):
            found.append(name)
    return found


def _images_below(folder: Path) -> int:
    """Image files (and hdf5 containers) below `folder`, without following links into other folders."""
    return sum(1 for _, _, files in os.walk(folder) for f in files
               if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_FILES)


def unrecognised_folders(raw_root: Path, recognised: list[str]) -> list[Unrecognised]:
    """Folders directly under `raw_root` that are not a recognised source (hidden ones and the external test
    sets' `external/` aside), each with its image count and the source whose files it holds if it is one
    under another name."""
    out = []
    for d in sorted(p for p in raw_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name in recognised or d.name == EXTERNAL_FOLDER:
            continue
        looks_like = next((n for n, mod in SOURCES.items() if n != d.name and mod.detect(d)), "")
        out.append(Unrecognised(d.name, _images_below(d), looks_like))
    return out


def check_record(raw_root: Path, min_size: int, max_bytes: int, max_pixels: int,
                 rec: Record) -> tuple[int, int, str] | Quarantined:
    """(width, height, sha256) of a record's image, or why it is quarantined."""
    try:
        # Decoding proves the file is whole; a reduced-scale decode proves it as well, much faster.
        _, digest, (w, h) = load_image_and_digest(raw_root, rec.file, max(min_size, 1), max_bytes, max_pixels)
    except ImageProblem as e:
        return Quarantined(rec.source, rec.image_id, e.reason, rec.file, e.detail)
    if min(h, w) < min_size:
        return Quarantined(rec.source, rec.image_id, TOO_SMALL, rec.file, f"{w}x{h} < {min_size} px")
    return w, h, digest


def ingest(raw_root: str | Path, min_size: int = 64, workers: int = 0,
           source_priority: list[str] | tuple[str, ...] = DEFAULT_PRIORITY, max_image_bytes: int = MAX_IMAGE_BYTES,
           max_pixels: int = MAX_PIXELS, archive: ArchivePolicy | None = None) -> IngestResult:
    """Every usable raw image once (see `republished.collapse`), and every other item quarantined.

    A file (or hdf5 entry) over `max_image_bytes` is not read, an image declaring over `max_pixels`
    pixels is not decoded: both are quarantined as too large. `archive`: what to do with the ISIC
    Archive's indeterminate, altered and non-dermoscopic images (default: the params schema's).
    A folder under `raw_root` that no reader recognises fails the ingest when it holds images (they
    would be left out unnoticed), before anything is decoded; without images it is only named."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise IngestError(f"{raw_root}: raw data folder does not exist (run `dvc pull data.dvc`)")
    sources = detect_sources(raw_root)
    unrecognised = unrecognised_folders(raw_root, sources)
    if with_images := [u for u in unrecognised if u.images]:
        raise UnrecognisedFolderError(raw_root, with_images)
    if not sources:
        raise IngestError(f"{raw_root}: no known source folder ({', '.join(SOURCES)}) with its metadata file")
    archive = archive or ArchivePolicy.default()
    records: list[Record] = []
    quarantined: list[Quarantined] = []
    listed: list[tuple[str, str, str]] = []
    empty_rows: dict[str, int] = {}
    for name in sources:
        res = (isic_archive.read(raw_root / name, raw_root, archive) if name == isic_archive.NAME
               else SOURCES[name].read(raw_root / name, raw_root))
        records += res.records
        quarantined += res.quarantined
        listed += [(name, a, b) for a, b in res.same_image]
        empty_rows[name] = res.empty_rows
    check = functools.partial(check_record, raw_root, min_size, max_image_bytes, max_pixels)
    checked = pmap(check, records, workers, desc="ingest: decoding")
    rows = []
    for rec, out in zip(records, checked):
        if isinstance(out, Quarantined):
            quarantined.append(out)
        else:
            rows.append({**asdict(rec), "width": out[0], "height": out[1], "sha256": out[2]})
    # Copies of one image with different labels: neither label is trusted, no copy is kept.
    columns = [c for c in MANIFEST_COLUMNS if c != "also_in"] + ["sha256"]  # also_in: made by `collapse`
    agreed, conflicts = split_conflicts(pd.DataFrame(rows, columns=columns), listed)
    quarantined += [Quarantined(r.source, r.image_id, CONFLICTING, r.file, r.detail) for r in conflicts.itertuples()]
    manifest, duplicates = collapse(agreed, source_priority, listed)
    duplicates = pd.concat([duplicates, conflict_rows(conflicts)], ignore_index=True) if len(conflicts) else duplicates
    quarantine = pd.DataFrame([q.row() for q in quarantined], columns=QUARANTINE_COLUMNS)
    return IngestResult(manifest[MANIFEST_COLUMNS], quarantine.sort_values(["source", "image_id", "reason"], ignore_index=True),
                        duplicates.sort_values(["source", "image_id"], ignore_index=True), empty_rows, unrecognised)


def defect_fraction(s: dict) -> float:
    """The share of raw items quarantined as broken, among those not set aside by choice (an ISIC Archive
    download of 400k TBP tiles and 100k dermoscopic images is not 80% broken)."""
    items = s["kept"] + s["quarantined"] - s.get("quarantined_by_choice", 0)
    return (s["quarantined"] - s.get("quarantined_by_choice", 0)) / items if items else 0.0


def check_usable(result: IngestResult, max_quarantine_fraction: float) -> None:
    """Fail only when nothing usable remains or too much had to be quarantined as broken."""
    s = result.summary()
    if s["kept"] == 0:
        raise IngestError("no usable image remains after ingest; see reports/quarantine.csv")
    if (frac := defect_fraction(s)) > max_quarantine_fraction:
        chosen = s.get("quarantined_by_choice", 0)
        raise IngestError(
            f"{frac:.1%} of raw items were quarantined, more than "
            f"ingest.max_quarantine_fraction={max_quarantine_fraction:.1%}"
            + (f" (not counting the {chosen} set aside by choice)" if chosen else "") + "; see reports/quarantine.csv"
        )


def format_summary(s: dict) -> str:
    lines = [f"ingest: kept {s['kept']}, quarantined {s['quarantined']} ({s['quarantined_fraction']:.1%})"]
    for src, n in s["kept_per_source"].items():
        q = s["quarantined_per_source"].get(src, {})
        qs = ", ".join(f"{r}: {c}" for r, c in sorted(q.items())) or "none"
        dropped = ", ".join(f"{k}: {c}" for k, c in s.get("dropped_per_source", {}).get(src, {}).items())
        lines.append(f"  {src:12s} kept {n:6d}   quarantined: {qs}" + (f"   copies dropped: {dropped}" if dropped else ""))
    for src, q in s["quarantined_per_source"].items():
        if src not in s["kept_per_source"]:
            lines.append(f"  {src:12s} kept      0   quarantined: " + ", ".join(f"{r}: {c}" for r, c in sorted(q.items())))
    if s.get("quarantined_by_choice"):
        lines.append(f"  set aside by choice (ingest.indeterminate, altered, image_types; downloaded again): "
                     f"{s['quarantined_by_choice']}, not counted against ingest.max_quarantine_fraction")
    for u in s.get("unrecognised_folders", []):
        lines.append(f"  folder {u['folder']}/ not read: no reader recognises it (no image files in it)")
    empty = {src: n for src, n in s.get("empty_rows", {}).items() if n}
    if empty:
        lines.append("  all-empty metadata rows skipped: " + ", ".join(f"{src} {n}" for src, n in empty.items()))
    return "\n".join(lines)
