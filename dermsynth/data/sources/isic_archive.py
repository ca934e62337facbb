"""ISIC Archive downloads (data/raw/isic_archive/): what `isic image download` and the bulk snapshot write.

A download is a folder holding `metadata.csv` (columns isic_id, attribution, copyright_license, then
a sorted subset of the archive's fields that depends on the images downloaded; missing values
empty), `attribution.txt`, `licenses/` and the images: flat beside it as `<isic_id>.<ext>` (isic-cli)
or under `images/` (the snapshot ISIC_images.zip). `data/raw/isic_archive/` may itself be one
download, or hold several side by side (`melanoma-2026/`, `collection-249/`, ...). An image belongs to
the download whose folder holds it most closely; an image in no download is an orphan.

Per row, in this order (the first that applies is the reason it is set aside):
- `image_manipulation` synthetic: always quarantined (a generated image is no real training image,
  and would leak into the memorisation and contamination audits as one);
- `image_type` not in `ingest.image_types` (an empty image_type is kept: it was not recorded);
- `image_manipulation` altered with `ingest.altered: quarantine`;
- the label: `diagnosis_1` (Benign/Malignant; Indeterminate by `ingest.indeterminate`), else the
  legacy `benign_malignant`, else the legacy `diagnosis` (dermsynth.isic_vocab).
The manifest's diagnosis is the most specific diagnosis_N given; the site is harmonised from the
anatom_site hierarchy; lesion_id and patient_id group images for the split as for every source.
An isic_id in two downloads is one image: the first download's file is used, the others are listed
as downloaded again. One also published by ISIC 2019/2020 is collapsed like any republished image
(dermsynth.data.republished, `ingest.source_priority`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dermsynth import isic_vocab as V
from dermsynth.data.records import (ALTERED, CONFLICTING, DOWNLOADED_AGAIN, IMAGE_TYPE, INDETERMINATE, ORPHAN,
                                    SYNTHETIC, UNKNOWN_LABEL, UNSAFE_PATH, ImageIndex, IngestError, Quarantined,
                                    Record, SourceResult, _same_bytes, clean, index_images, outside_link,
                                    resolve_rows)
from dermsynth.data.sources.common import header, read_table
from dermsynth.data.subgroups import age_band, harmonise_sex, harmonise_site

NAME = "isic_archive"
METADATA = "metadata.csv"
SNAPSHOT_IMAGES = "images"  # the snapshot's image folder; isic-cli writes the images beside metadata.csv


@dataclass(frozen=True)
class ArchivePolicy:
    """What to do with rows that are not plain dermoscopic images of a benign or malignant lesion (the
    `ingest` parameters of the same names; dermsynth.params says what each value means)."""

    indeterminate: str  # quarantine | benign | malignant
    altered: str  # keep | quarantine
    image_types: tuple[str, ...]

    @classmethod
    def from_params(cls, ingest: dict) -> ArchivePolicy:
        return cls(ingest["indeterminate"], ingest["altered"], tuple(ingest["image_types"]))

    @classmethod
    def default(cls) -> ArchivePolicy:
        from dermsynth.params import Ingest  # the schema is the one source of defaults

        return cls.from_params(Ingest().model_dump())


def downloads(folder: Path) -> list[Path]:
    """Every folder at or below `folder` holding an ISIC Archive metadata.csv (its header names isic_id),
    in path order: for an image downloaded twice, the first is the one used. A metadata.csv that links
    out of `folder` counts, so that `read` refuses it by name instead of the folder passing unnoticed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # links to folders are not descended (index_images)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        meta = Path(dirpath) / METADATA
        if METADATA in filenames and (outside_link(folder, meta) or "isic_id" in header(meta)):
            found.append(Path(dirpath))
    return sorted(found)


def detect(folder: Path) -> bool:
    return bool(downloads(folder))


def _label(row: dict, policy: ArchivePolicy) -> tuple[str | None, str, str]:
    """(label, reason when there is none, detail) from diagnosis_1, else the legacy columns."""
    dx1, bm, legacy = clean(row.get("diagnosis_1")), clean(row.get("benign_malignant")), clean(row.get("diagnosis"))
    if dx1:
        key = next((k for k in V.LABEL_OF_DIAGNOSIS_1 if k.lower() == dx1.lower()), None)
        if key is None:
            return None, UNKNOWN_LABEL, f"diagnosis_1 {dx1!r} is not one of {list(V.LABEL_OF_DIAGNOSIS_1)}"
        label, said = V.LABEL_OF_DIAGNOSIS_1[key], f"diagnosis_1 {dx1!r}"
        # an older export may carry both: a definite benign_malignant that disagrees is not trusted
        other = V.LABEL_OF_BENIGN_MALIGNANT.get(bm.lower())
        if label and other and other != label:
            return None, CONFLICTING, f"conflicting: diagnosis_1={dx1!r} but benign_malignant={bm!r}"
    elif bm:
        if bm.lower() not in V.LABEL_OF_BENIGN_MALIGNANT:
            return None, UNKNOWN_LABEL, f"benign_malignant {bm!r} is not one of {list(V.LABEL_OF_BENIGN_MALIGNANT)}"
        label, said = V.LABEL_OF_BENIGN_MALIGNANT[bm.lower()], f"benign_malignant {bm!r}"
    elif legacy:
        key = next((k for k in V.LABEL_OF_LEGACY_DX if k.lower() == legacy.lower()), None)
        if key is None or V.LABEL_OF_LEGACY_DX[key] is None:
            return None, UNKNOWN_LABEL, f"legacy diagnosis {legacy!r} names no malignancy"
        value = V.LABEL_OF_LEGACY_DX[key]
        label, said = (None if value == "indeterminate" else value), f"legacy diagnosis {legacy!r}"
    else:
        return None, UNKNOWN_LABEL, "no diagnosis_1, benign_malignant or diagnosis"
    if label:
        return label, "", ""
    if policy.indeterminate == "quarantine":  # indeterminate by ISIC's own account
        return None, INDETERMINATE, f"{said}; ingest.indeterminate is quarantine"
    return policy.indeterminate, "", ""


def _set_aside(row: dict, policy: ArchivePolicy) -> tuple[str, str] | None:
    """(reason, detail) for an image that is not used whatever its label, else None."""
    manip, itype = clean(row.get("image_manipulation")), clean(row.get("image_type"))
    if manip == V.SYNTHETIC:
        return SYNTHETIC, "image_manipulation synthetic: a generated image, never used as a real one"
    if itype and itype not in policy.image_types:
        return f"{IMAGE_TYPE} {itype!r}", f"not in ingest.image_types {list(policy.image_types)}"
    if manip == V.ALTERED and policy.altered == "quarantine":
        return ALTERED, "image_manipulation altered; ingest.altered is quarantine"
    return None


def site_of(row: dict) -> str:
    """One of dermsynth.data.subgroups.SITES, or unknown: anatom_site_special first (acral, oral or
    genital), then the hierarchy anatom_site_1..5, then the legacy anatom_site_general."""
    special = V.SITE_OF_SPECIAL.get(clean(row.get("anatom_site_special")))
    if special:
        return special
    path = V.site_path([clean(row.get(c)) for c in V.SITE_COLUMNS])
    return V.site_of_path(path) or harmonise_site(clean(row.get("anatom_site_general")))


def diagnosis_of(row: dict) -> str:
    """The most specific diagnosis_N given, else the legacy diagnosis."""
    return V.most_specific([clean(row.get(c)) for c in V.DIAGNOSIS_COLUMNS]) or clean(row.get("diagnosis"))


def parse_row(row: dict, policy: ArchivePolicy) -> tuple[str, str | None, str, dict]:
    """A metadata.csv row as (isic_id, label or None, why not, extra fields) for `resolve_rows`."""
    extra = {"lesion_id": clean(row.get("lesion_id")), "patient_id": clean(row.get("patient_id")),
             "diagnosis": diagnosis_of(row), "sex": harmonise_sex(row.get("sex")),
             "age_band": age_band(row.get("age_approx")), "site": site_of(row),
             "fitzpatrick_skin_type": clean(row.get("fitzpatrick_skin_type")),
             "copyright_license": clean(row.get("copyright_license")), "attribution": clean(row.get("attribution"))}
    aside = _set_aside(row, policy)
    if aside:
        return clean(row["isic_id"]), None, aside[1], {**extra, "reason": aside[0]}
    label, reason, why = _label(row, policy)
    return clean(row["isic_id"]), label, why, ({**extra, "reason": reason} if reason else extra)


def _owner(p: Path, roots: list[Path]) -> Path | None:
    """The download folder that holds `p` most closely (roots are listed under the same source path)."""
    holding = [r for r in roots if p.is_relative_to(r)]
    return max(holding, key=lambda r: len(r.parts)) if holding else None


def _split_index(index: ImageIndex, roots: list[Path], raw_root: Path) -> tuple[dict[Path, ImageIndex],
                                                                               list[Quarantined]]:
    """The image index of each download, and the images that lie in none (orphans, unsafe links)."""
    per = {r: ImageIndex() for r in roots}
    loose = []
    for stem, paths in index.files.items():
        for p in paths:
            if (owner := _owner(p, roots)) is None:
                loose.append(Quarantined(NAME, stem, ORPHAN, p.relative_to(raw_root).as_posix(),
                                         "image file in no download folder (no ISIC metadata.csv beside or above it)"))
            else:
                per[owner].files.setdefault(stem, []).append(p)
    for stem, links in index.unsafe.items():
        for p, target in links:
            if (owner := _owner(p, roots)) is None:
                rel = p.relative_to(raw_root).as_posix()
                loose.append(Quarantined(NAME, stem, UNSAFE_PATH, rel, f"{rel}: {target}, outside the source folder"))
            else:
                per[owner].unsafe.setdefault(stem, []).append((p, target))
    return per, loose


def _merge(parts: list[SourceResult], raw_root: Path) -> SourceResult:
    """One record per isic_id over all downloads: the first download's; a later copy is downloaded again
    (the same image), unless the downloads disagree on the label or diagnosis (then none is trusted)."""
    out = SourceResult()
    by_id: dict[str, list[Record]] = {}
    for res in parts:
        out.quarantined += res.quarantined
        out.empty_rows += res.empty_rows
        for r in res.records:
            by_id.setdefault(r.image_id, []).append(r)
    for image_id, recs in by_id.items():
        first = recs[0]
        if len({(r.label, r.diagnosis) for r in recs}) > 1:
            detail = "downloads disagree: " + "; ".join(f"{r.file} {r.label} ({r.diagnosis})" for r in recs)
            out.quarantined += [Quarantined(NAME, image_id, CONFLICTING, r.file, detail) for r in recs]
            continue
        out.records.append(first)
        for r in recs[1:]:
            same = _same_bytes(raw_root / first.file, raw_root / r.file)
            out.quarantined.append(Quarantined(NAME, image_id, DOWNLOADED_AGAIN, r.file,
                                               f"the same isic_id as {first.file} ({same}), which is used"))
    return out


def _metadata(folder: Path, root: Path) -> Path:
    """A download's metadata.csv, refused by name when it links out of the source folder."""
    meta = root / METADATA
    if target := outside_link(folder, meta):
        raise IngestError(f"{meta}: links to {target}, outside the source folder {folder.resolve()}; "
                          "copy the file into the archive or link the whole source folder instead")
    return meta


def read(folder: Path, raw_root: Path, policy: ArchivePolicy | None = None) -> SourceResult:
    policy = policy or ArchivePolicy.default()
    roots = downloads(folder)
    if not roots:
        raise IngestError(f"{folder}: no ISIC Archive {METADATA} (a header naming isic_id) in it or below it")
    per, loose = _split_index(index_images(folder), roots, raw_root)
    parts = []
    for root in roots:
        df, empty = read_table(_metadata(folder, root), ["isic_id"])  # every other column is optional
        res = resolve_rows(NAME, [parse_row(r, policy) for r in df.to_dict("records")], raw_root, per[root])
        res.empty_rows = empty
        parts.append(res)
    out = _merge(parts, raw_root)
    out.quarantined += loose
    return out


def _counts(df: pd.DataFrame, col: str) -> str:
    if col not in df.columns:
        return f"no {col} column"
    n = df[col].map(clean).replace("", "(empty)").value_counts().sort_index()
    return f"{col}: " + ", ".join(f"{k} {v}" for k, v in n.items())


# the columns a user most needs to know are missing (labels, sites, grouping, the filters)
KEY_COLUMNS = ("diagnosis_1", "anatom_site_1", "lesion_id", "patient_id", "image_type", "image_manipulation",
               "copyright_license")


def describe(folder: Path, raw_root: Path) -> list[str]:
    """What `dermsynth check` says about each download: its layout, rows, images, columns, and the rows
    by diagnosis_1, image_type and image_manipulation (read from metadata.csv; no image is decoded)."""
    roots = downloads(folder)
    per, loose = _split_index(index_images(folder), roots, raw_root)
    lines = []
    for root in roots:
        name = root.relative_to(raw_root).as_posix()
        try:
            df, _ = read_table(_metadata(folder, root), ["isic_id"])
        except IngestError as e:
            lines.append(f"{name}: {e}")
            continue
        layout = "snapshot (images/)" if (root / SNAPSHOT_IMAGES).is_dir() else "isic-cli (flat)"
        images = sum(len(v) for v in per[root].files.values())
        missing = [c for c in KEY_COLUMNS if c not in df.columns]
        lines.append(f"{name}: {layout}, {len(df)} rows, {images} images, {len(df.columns)} columns"
                     + (f" (no {', '.join(missing)})" if missing else "") + "; "
                     + "; ".join(_counts(df, c) for c in ("diagnosis_1", "image_type", "image_manipulation")
                                 if c in df.columns or c == "diagnosis_1"))
    if loose:
        lines.append(f"{len(loose)} image file(s) in no download folder (orphans)")
    return lines
