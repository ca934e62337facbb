"""ISIC 2019: one-hot ISIC_2019_Training_GroundTruth.csv, optional ..._Metadata.csv (lesion_id),
images in ISIC_2019_Training_Input/."""
from __future__ import annotations

from pathlib import Path

from dermsynth.data.records import SourceResult, clean, index_images, resolve_rows
from dermsynth.data.sources.common import attributes, find_file, metadata_file, read_table

NAME = "isic2019"
GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
MALIGNANT = {"MEL", "BCC", "AK", "SCC"}
BENIGN = {"NV", "BKL", "DF", "VASC"}
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]


def detect(folder: Path) -> bool:
    return find_file(folder, [GROUND_TRUTH]) is not None


def label_of(row: dict) -> tuple[str | None, str, str]:
    """(label, why-not, diagnosis) from the one-hot columns."""
    positive = []
    for c in CLASSES:
        try:
            if float(row.get(c, "") or 0) >= 0.5:
                positive.append(c)
        except ValueError:
            return None, f"column {c} holds {row[c]!r}, not a number", ""
    if len(positive) > 1:
        return None, f"conflicting one-hot labels {positive}", "+".join(positive)
    if not positive or positive[0] == "UNK":
        return None, "no known diagnosis (UNK or all zero)", "unk"
    dx = positive[0]
    return ("malignant" if dx in MALIGNANT else "benign"), "", dx.lower()


def read(folder: Path, raw_root: Path) -> SourceResult:
    gt, empty = read_table(metadata_file(folder, [GROUND_TRUTH]), ["image"] + CLASSES[:-1])
    meta: dict[str, dict] = {}  # the metadata file is optional: without it, lesions and attributes are unknown
    meta_path = metadata_file(folder, [METADATA], required=False)
    if meta_path is not None:
        table, empty_meta = read_table(meta_path, ["image"])
        meta = {clean(r["image"]): r for r in table.to_dict("records")}
        empty += empty_meta
    rows = []
    for r in gt.to_dict("records"):
        image_id = clean(r["image"])
        label, why, dx = label_of(r)
        m = meta.get(image_id, {})
        rows.append((image_id, label, why, {"lesion_id": clean(m.get("lesion_id")), "patient_id": "", "diagnosis": dx,
                                            **attributes(m, "sex", "age_approx", "anatom_site_general")}))
    res = resolve_rows(NAME, rows, raw_root, index_images(folder))
    res.empty_rows = empty
    return res
