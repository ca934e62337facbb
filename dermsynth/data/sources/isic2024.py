"""ISIC 2024 (SLICE-3D): train-metadata.csv (isic_id, target, patient_id, ...) and
train-image.hdf5 holding one dataset of encoded JPEG bytes per isic_id (each entry is checked when it is
read, dermsynth.data.images: links, virtual and external datasets are refused)."""
from __future__ import annotations

from pathlib import Path

import h5py

from dermsynth.data.records import (MISSING_FILE, ORPHAN, UNREADABLE, UNSAFE_PATH, Quarantined, SourceResult, clean,
                                    outside_link, resolve_rows)
from dermsynth.data.sources.common import attributes, find_file, metadata_file, read_table

NAME = "isic2024"
METADATA = "train-metadata.csv"
IMAGES = "train-image.hdf5"


def detect(folder: Path) -> bool:
    return find_file(folder, [METADATA]) is not None and find_file(folder, [IMAGES]) is not None


def read(folder: Path, raw_root: Path) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [METADATA]), ["isic_id", "target", "patient_id"])
    rows = []
    for r in df.to_dict("records"):
        t = r["target"]
        label = {"1": "malignant", "0": "benign", "1.0": "malignant", "0.0": "benign"}.get(t.strip())
        rows.append((clean(r["isic_id"]), label, "" if label else f"target {t!r} is not 0 or 1",
                     {"lesion_id": clean(r.get("lesion_id")), "patient_id": clean(r["patient_id"]), "diagnosis": "",
                      **attributes(r, "sex", "age_approx", "anatom_site_general")}))
    res = resolve_rows(NAME, rows, raw_root, index=None)
    res.empty_rows = empty
    h5 = find_file(folder, [IMAGES])
    rel = h5.relative_to(raw_root).as_posix()
    if target := outside_link(folder, h5):
        # The container is a link out of the archive: nothing in it is read, every row says why.
        res.quarantined += [Quarantined(NAME, r.image_id, UNSAFE_PATH, rel, f"{rel}: link to {target}, outside the "
                                        "source folder") for r in res.records]
        res.records = []
        return res
    try:
        with h5py.File(h5, "r") as f:
            keys = set(f.keys())
    except Exception as e:  # h5py raises OSError, KeyError or RuntimeError for a damaged container
        # The whole container is unreadable: every row is quarantined, none is silently lost.
        res.quarantined += [Quarantined(NAME, r.image_id, UNREADABLE, rel, f"hdf5: {e}") for r in res.records]
        res.records = []
        return res
    kept = []
    for r in res.records:
        if r.image_id in keys:
            r.file = f"{rel}#{r.image_id}"
            kept.append(r)
        else:
            res.quarantined.append(Quarantined(NAME, r.image_id, MISSING_FILE, rel, "no entry in the hdf5 file"))
    listed = {r[0] for r in rows}
    res.quarantined += [Quarantined(NAME, k, ORPHAN, f"{rel}#{k}", "hdf5 entry with no metadata row")
                        for k in sorted(keys - listed)]
    res.records = kept
    return res
