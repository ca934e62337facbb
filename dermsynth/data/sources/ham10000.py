"""HAM10000: HAM10000_metadata.csv + images in HAM10000_images_part_{1,2}/ (or any folder)."""
from __future__ import annotations

from pathlib import Path

from dermsynth.data.records import SourceResult, clean, index_images, resolve_rows
from dermsynth.data.sources.common import attributes, find_file, metadata_file, read_table

NAME = "ham10000"
METADATA = "HAM10000_metadata.csv"
MALIGNANT = {"mel", "bcc", "akiec"}
BENIGN = {"nv", "bkl", "df", "vasc"}


def detect(folder: Path) -> bool:
    return find_file(folder, [METADATA]) is not None


def label_of(dx: str) -> tuple[str | None, str]:
    dx = dx.strip().lower()
    if dx in MALIGNANT:
        return "malignant", ""
    if dx in BENIGN:
        return "benign", ""
    return None, f"dx {dx!r} is not one of {sorted(MALIGNANT | BENIGN)}"


def read(folder: Path, raw_root: Path) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [METADATA]), ["lesion_id", "image_id", "dx"])
    rows = []
    for r in df.to_dict("records"):
        label, why = label_of(r["dx"])
        rows.append((clean(r["image_id"]), label, why,
                     {"lesion_id": clean(r["lesion_id"]), "patient_id": "", "diagnosis": clean(r["dx"]).lower(),
                      **attributes(r, "sex", "age", "localization")}))
    res = resolve_rows(NAME, rows, raw_root, index_images(folder))
    res.empty_rows = empty
    return res
