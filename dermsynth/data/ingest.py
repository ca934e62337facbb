"""Ingest every raw source found under data/raw into one manifest, quarantining bad inputs.

Metadata problems are found by each source's reader; image problems by decoding every image
once here (in parallel). The result is two tables that together account for every raw item:
the manifest (usable) and the quarantine (with a reason per item).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from dermsynth.contracts import DUPLICATES_COLUMNS, MANIFEST_COLUMNS, QUARANTINE_COLUMNS
from dermsynth.data.images import MAX_IMAGE_BYTES, MAX_PIXELS, ImageProblem, load_image_and_digest
from dermsynth.data.records import CONFLICTING, TOO_SMALL, IngestError, Quarantined, Record
from dermsynth.data.republished import DEFAULT_PRIORITY, collapse, conflict_rows, split_conflicts
from dermsynth.data.republished import summary as duplicates_summary
from dermsynth.data.sources import ham10000, isic2019, isic2020, isic2024
from dermsynth.parallel import pmap

SOURCES = {m.NAME: m for m in (ham10000, isic2019, isic2020, isic2024)}


@dataclass
class IngestResult:
    manifest: pd.DataFrame
    quarantine: pd.DataFrame
    duplicates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DUPLICATES_COLUMNS))
    empty_rows: dict[str, int] = field(default_factory=dict)  # all-empty metadata rows skipped, per source

    def summary(self) -> dict:
        kept = self.manifest.groupby("source").size().to_dict() if len(self.manifest) else {}
        q = self.quarantine
        by_reason = {s: g.groupby("reason").size().to_dict() for s, g in q.groupby("source")} if len(q) else {}
        total = len(self.manifest) + len(q)
        return {
            "kept": int(len(self.manifest)),
            "quarantined": int(len(q)),
            "quarantined_fraction": round(len(q) / total, 4) if total else 0.0,
            "kept_per_source": {k: int(v) for k, v in kept.items()},
            "quarantined_per_source": {s: {r: int(n) for r, n in d.items()} for s, d in by_reason.items()},
            "labels": {k: int(v) for k, v in self.manifest.groupby("label").size().to_dict().items()} if len(self.manifest) else {},
            **duplicates_summary(self.duplicates),
            "empty_rows": {k: int(v) for k, v in self.empty_rows.items()},
        }


def detect_sources(raw_root: Path) -> list[str]:
    """Source folders under `raw_root` recognised by their files (any subset may be present)."""
    found = []
    for name, mod in SOURCES.items():
        folder = raw_root / name
        if folder.is_dir() and mod.detect(folder):
            found.append(name)
    return found


def _check(raw_root: Path, min_size: int, max_bytes: int, max_pixels: int,
           rec: Record) -> tuple[int, int, str] | Quarantined:
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
           max_pixels: int = MAX_PIXELS) -> IngestResult:
    """Every usable raw image once (see `republished.collapse`), and every other item quarantined.

    A file (or hdf5 entry) over `max_image_bytes` is not read, an image declaring over `max_pixels`
    pixels is not decoded: both are quarantined as too large."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise IngestError(f"{raw_root}: raw data folder does not exist (run `dvc pull data.dvc`)")
    sources = detect_sources(raw_root)
    if not sources:
        raise IngestError(f"{raw_root}: no known source folder ({', '.join(SOURCES)}) with its metadata file")
    records: list[Record] = []
    quarantined: list[Quarantined] = []
    listed: list[tuple[str, str, str]] = []
    empty_rows: dict[str, int] = {}
    for name in sources:
        res = SOURCES[name].read(raw_root / name, raw_root)
        records += res.records
        quarantined += res.quarantined
        listed += [(name, a, b) for a, b in res.same_image]
        empty_rows[name] = res.empty_rows
    check = functools.partial(_check, raw_root, min_size, max_image_bytes, max_pixels)
    checked = pmap(check, records, workers, desc="ingest: decoding")
    rows = []
    for rec, out in zip(records, checked):
        if isinstance(out, Quarantined):
            quarantined.append(out)
        else:
            rows.append({**asdict(rec), "width": out[0], "height": out[1], "sha256": out[2]})
    # Copies of one image with different labels: neither label is trusted, no copy is kept.
    agreed, conflicts = split_conflicts(pd.DataFrame(rows, columns=MANIFEST_COLUMNS[:-1] + ["sha256"]), listed)
    quarantined += [Quarantined(r.source, r.image_id, CONFLICTING, r.file, r.detail) for r in conflicts.itertuples()]
    manifest, duplicates = collapse(agreed, source_priority, listed)
    duplicates = pd.concat([duplicates, conflict_rows(conflicts)], ignore_index=True) if len(conflicts) else duplicates
    quarantine = pd.DataFrame([q.row() for q in quarantined], columns=QUARANTINE_COLUMNS)
    return IngestResult(manifest[MANIFEST_COLUMNS], quarantine.sort_values(["source", "image_id", "reason"], ignore_index=True),
                        duplicates.sort_values(["source", "image_id"], ignore_index=True), empty_rows)


def check_usable(result: IngestResult, max_quarantine_fraction: float) -> None:
    """Fail only when nothing usable remains or too much had to be quarantined."""
    s = result.summary()
    if s["kept"] == 0:
        raise IngestError("no usable image remains after ingest; see reports/quarantine.csv")
    if s["quarantined_fraction"] > max_quarantine_fraction:
        raise IngestError(
            f"{s['quarantined_fraction']:.1%} of raw items were quarantined, more than "
            f"ingest.max_quarantine_fraction={max_quarantine_fraction:.1%}; see reports/quarantine.csv"
        )


def format_summary(s: dict) -> str:
    lines = [f"ingest: kept {s['kept']}, quarantined {s['quarantined']} ({s['quarantined_fraction']:.1%})"]
    for src, n in s["kept_per_source"].items():
        q = s["quarantined_per_source"].get(src, {})
        qs = ", ".join(f"{r}: {c}" for r, c in sorted(q.items())) or "none"
        dropped = ", ".join(f"{k}: {c}" for k, c in s.get("dropped_per_source", {}).get(src, {}).items())
        lines.append(f"  {src:9s} kept {n:6d}   quarantined: {qs}" + (f"   copies dropped: {dropped}" if dropped else ""))
    for src, q in s["quarantined_per_source"].items():
        if src not in s["kept_per_source"]:
            lines.append(f"  {src:9s} kept      0   quarantined: " + ", ".join(f"{r}: {c}" for r, c in sorted(q.items())))
    empty = {src: n for src, n in s.get("empty_rows", {}).items() if n}
    if empty:
        lines.append("  all-empty metadata rows skipped: " + ", ".join(f"{src} {n}" for src, n in empty.items()))
    return "\n".join(lines)
