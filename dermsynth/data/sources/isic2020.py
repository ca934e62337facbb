"""ISIC 2020 (SIIM-ISIC): train.csv (image_name, patient_id, ..., benign_malignant, target) and
images in train/ (jpg)."""
from __future__ import annotations

from pathlib import Path

from dermsynth.data.records import SourceResult, clean, index_images, outside_link, resolve_rows
from dermsynth.data.sources.common import attributes, find_file, metadata_file, read_table

NAME = "isic2020"
METADATA = "train.csv"
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"  # image_name_1, image_name_2: the same image twice


def detect(folder: Path) -> bool:
    meta = find_file(folder, [METADATA])
    if meta is None:
        return False
    if outside_link(folder, meta):
        return True  # not read here: `read` refuses it with a clear error
    with open(meta, errors="replace") as fh:  # the header line only, not a million rows
        return "image_name" in fh.readline(1 << 16)


def label_of(target: str, benign_malignant: str) -> tuple[str | None, str]:
    by_target = {"1": "malignant", "0": "benign", "1.0": "malignant", "0.0": "benign"}.get(target.strip())
    by_text = benign_malignant.strip().lower() or None
    if by_text is not None and by_text not in ("benign", "malignant"):
        return None, f"benign_malignant {benign_malignant!r} is neither benign nor malignant"
    if by_target and by_text and by_target != by_text:
        return None, f"conflicting: target={target!r} but benign_malignant={benign_malignant!r}"
    label = by_target or by_text
    return (label, "") if label else (None, f"target {target!r} is not 0 or 1")


def read(folder: Path, raw_root: Path) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [METADATA]), ["image_name", "patient_id", "target"])
    rows = []
    for r in df.to_dict("records"):
        label, why = label_of(r["target"], r.get("benign_malignant", ""))
        rows.append((clean(r["image_name"]), label, why,
                     {"lesion_id": "", "patient_id": clean(r["patient_id"]), "diagnosis": clean(r.get("diagnosis")),
                      **attributes(r, "sex", "age_approx", "anatom_site_general_challenge")}))
    res = resolve_rows(NAME, rows, raw_root, index_images(folder))
    dup_file = metadata_file(folder, [DUPLICATES], required=False)
    if dup_file is not None:
        pairs, empty_pairs = read_table(dup_file, ["image_name_1", "image_name_2"])
        res.same_image = [(clean(a), clean(b)) for a, b in zip(pairs["image_name_1"], pairs["image_name_2"])]
        empty += empty_pairs
    res.empty_rows = empty
    return res
