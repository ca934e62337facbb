"""A released synthetic set's files, listed and checked before any is read: class folders walked (links
that lead out never followed), CSV rows parsed, and every file that cannot be used set aside with its reason
(dermsynth.diffusion.released reads and converts what is left)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from dermsynth.data.records import DUPLICATE_ROW, LABELS, MISSING_FILE, UNKNOWN_LABEL, UNSAFE_PATH, inside
from dermsynth.errors import UserValueError
from dermsynth.params import Generate, Ingest, Prepare, defaults_from

CSV_REQUIRED = ("path", "label")
# what a CSV may say of each image, in the generator's metadata columns; any other column is ignored (and named)
CSV_OPTIONAL = ("prompt", "negative_prompt", "sampler", "steps", "cfg", "seed")
_NUMERIC = {"steps": int, "cfg": float, "seed": int}


@dataclass(frozen=True)
@defaults_from(Generate, Prepare, Ingest, required=("source",))
class ImportConfig:
    source: str  # generate.source, relative to the repository
    classes: tuple[str, ...]
    n_per_class: int
    size: int
    seed: int = 0  # data_seed: which n_per_class images
    workers: int
    max_image_bytes: int
    max_pixels: int


@dataclass
class Candidate:
    label: str
    file: str  # relative to the set's folder (a CSV's folder), as the CSV or the folder walk gave it
    meta: dict = field(default_factory=dict)  # what a CSV says of it (CSV_OPTIONAL columns)


def _quarantine(source: str, file: str, reason: str, detail: str) -> dict:
    return {"source": source, "image_id": PurePosixPath(file).stem if file else "", "reason": reason, "file": file,
            "detail": detail}


def _escapes(base: Path, file: str) -> str:
    """Why `file` (relative to the resolved `base`) would be read from outside it, or ''."""
    if not file:
        return ""
    if PurePosixPath(file).is_absolute() or Path(file).is_absolute():
        return f"{file}: an absolute path (paths are relative to the set's folder)"
    try:
        target = (base / file).resolve()
    except (RuntimeError, OSError, ValueError) as e:  # a loop of links; a NUL in the name
        return f"{file}: leads nowhere ({e})"
    return "" if inside(base, target) else f"{file}: leads out of {base} (to {target})"


def _walk(base: Path, top: Path) -> tuple[list[str], list[str], int]:
    """The files below `top` (relative to the resolved `base`, sorted), the links below it that lead out
    of `base` (never followed), and how many hidden entries (`.DS_Store`, `._x.png`, `.cache/`) were skipped.
    Links that stay inside are followed, each real folder once (a loop of links ends)."""
    files, outside, hidden, seen, stack = [], [], 0, set(), [top]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        entries = sorted(os.scandir(d), key=lambda e: e.name)
        for e in entries:
            rel = (Path(d) / e.name).relative_to(base).as_posix()  # lexically below base: d was built from it
            if e.name.startswith("."):
                hidden += 1
            elif e.is_symlink() and _escapes(base, rel):
                outside.append(rel)
            elif e.is_dir():
                stack.append(Path(d) / e.name)
            else:  # a file, or a broken link, a FIFO...: _read_file says which
                files.append(rel)
    return sorted(files), sorted(outside), hidden


def _from_folders(base: Path, cfg: ImportConfig) -> tuple[list[Candidate], list[dict], dict]:
    cands, quarantined, skipped = [], [], {}
    for label in cfg.classes:
        files, outside, hidden = _walk(base, base / label)
        if hidden:
            skipped[f"hidden files in {label}/"] = hidden
        quarantined += [_quarantine(cfg.source, f, UNSAFE_PATH, _escapes(base, f)) for f in outside]
        for f in files:
            why = _escapes(base, f)  # a link in a linked folder, say
            if why:
                quarantined.append(_quarantine(cfg.source, f, UNSAFE_PATH, why))
            else:
                cands.append(Candidate(label, f))
    return cands, quarantined, skipped


def _read_csv(csv: Path, cfg: ImportConfig) -> tuple[list[Candidate], list[dict], dict]:
    try:
        rows = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserValueError(f"generate.source: {cfg.source} is not a readable CSV ({' '.join(str(e).split())})") from None
    rows.columns = [str(c).strip().lower() for c in rows.columns]
    missing = [c for c in CSV_REQUIRED if c not in rows.columns]
    if missing:
        raise UserValueError(f"generate.source: {cfg.source} has no {' or '.join(missing)} column (it needs "
                             f"path,label; optional: {','.join(CSV_OPTIONAL)}; got {','.join(rows.columns)})")
    bad = []
    for col, kind in _NUMERIC.items():
        if col not in rows.columns:
            continue
        for i, v in zip(rows.index, rows[col]):
            try:
                if v.strip():
                    kind(v)
            except ValueError:
                bad.append(f"row {i + 2} {col}={v!r}")
    if bad:
        raise UserValueError(f"generate.source: {cfg.source}: not numbers where numbers belong ({', '.join(bad[:3])}"
                             f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}); fix or drop the column")
    base, cands, quarantined, seen = csv.parent.resolve(), [], [], set()
    skipped: dict[str, int] = {}
    ignored = [c for c in rows.columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if ignored:
        skipped["columns ignored: " + ",".join(ignored)] = len(rows)
    for r in rows.to_dict("records"):
        file, label = r["path"].strip(), r["label"].strip().lower()
        if not file and not label and not any(str(v).strip() for v in r.values()):
            continue  # a blank line a spreadsheet left
        if label not in LABELS:
            quarantined.append(_quarantine(cfg.source, file, UNKNOWN_LABEL, f"label {r['label']!r} is not one of "
                                           f"{', '.join(LABELS)}"))
            continue
        if label not in cfg.classes:
            why = f"{label} rows (not in generate.classes)"
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if not file:
            quarantined.append(_quarantine(cfg.source, file, MISSING_FILE, "empty path"))
            continue
        why = _escapes(base, file)
        if why:
            quarantined.append(_quarantine(cfg.source, file, UNSAFE_PATH, why))
            continue
        key = PurePosixPath(os.path.normpath(file)).as_posix()
        if key in seen:
            quarantined.append(_quarantine(cfg.source, file, DUPLICATE_ROW, f"{file} listed again"))
            continue
        seen.add(key)
        cands.append(Candidate(label, key, {c: r[c].strip() for c in CSV_OPTIONAL if c in r}))
    return cands, quarantined, skipped


def list_set(src: Path, cfg: ImportConfig) -> tuple[str, Path, tuple[list[Candidate], list[dict], dict]]:
    """The set at the resolved `src`: its kind (csv | folders), the folder its files are relative to, and its
    candidates, quarantined rows and skipped counts."""
    if src.is_file():
        return "csv", src.parent, _read_csv(src, cfg)
    return "folders", src, _from_folders(src, cfg)
