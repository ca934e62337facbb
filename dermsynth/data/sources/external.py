"""External test sets (data/raw/external/<folder>/), read in the layout each archive is downloaded in.

Every layout becomes rows for `resolve_rows`, so missing files, orphans, duplicate files and unsafe ids or
links are handled exactly as for a training source (docs/external_test_sets.md has the table of layouts).
Two things differ from the training sources: `ingest.image_types` is not applied (the user chose the set as
a whole, clinical photographs included), except for MILK10k, which pairs a clinical and a dermoscopic image
of every lesion, so that a dermoscopy classifier is judged on the dermoscopic one; and the skin type the
archive reports is kept: Fitzpatrick in `fitzpatrick_skin_type`, MILK10k's own scale in `skin_tone_class`.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from dermsynth.data.records import (IMAGE_EXTENSIONS, INDETERMINATE, LABELS, MISSING_FILE, UNKNOWN_LABEL, UNSAFE_PATH,
                                    ImageIndex, IngestError, Quarantined, SourceResult, clean, index_images,
                                    resolve_rows, safe_join)
from dermsynth.data.sources import isic_archive
from dermsynth.data.sources.common import attributes, find_file, header, metadata_file, read_table
from dermsynth.data.sources.isic_archive import ArchivePolicy
from dermsynth.errors import UserValueError

LAYOUTS = ("ddi", "pad_ufes_20", "fitzpatrick17k", "milk10k", "csv")
DDI_METADATA = "ddi_metadata.csv"
PAD_METADATA = "metadata.csv"
F17K_METADATA = "fitzpatrick17k.csv"
MILK_METADATA = "MILK10k_Training_Metadata.csv"
MILK_TRUTH = "MILK10k_Training_GroundTruth.csv"
CSV_PREFERRED = "labels.csv"

IND = "indeterminate"  # a diagnosis with no fixed label: ingest.indeterminate decides, as for the ISIC Archive
ROMAN = ("I", "II", "III", "IV", "V", "VI")
# DDI reports Fitzpatrick in pairs (12, 34, 56); a generic CSV may too, in either spelling
GROUPED = {"12": "I-II", "34": "III-IV", "56": "V-VI", "1-2": "I-II", "3-4": "III-IV", "5-6": "V-VI",
           **{g: g for g in ("I-II", "III-IV", "V-VI")}}
# PAD-UFES-20 `diagnostic`; ACK is actinic keratosis, which ISIC's hierarchy files under Indeterminate
PAD_LABELS = {"BCC": "malignant", "MEL": "malignant", "SCC": "malignant", "NEV": "benign", "SEK": "benign", "ACK": IND}
# PAD-UFES-20 `region` values that dermsynth.data.subgroups.SITE_MAP does not know, in words it does
PAD_REGIONS = {"ARM": "upper extremity", "FOREARM": "upper extremity", "THIGH": "lower extremity", "NOSE": "face",
               "LIP": "oral/genital"}
# MILK10k ground-truth one-hot classes; AKIEC (actinic keratosis / intraepidermal carcinoma) as ACK above
MILK_LABELS = {"BCC": "malignant", "MAL_OTH": "malignant", "MEL": "malignant", "SCCKA": "malignant",
               "BEN_OTH": "benign", "BKL": "benign", "DF": "benign", "NV": "benign", "VASC": "benign",
               "AKIEC": IND, "INF": None}
TRUE, FALSE = {"true", "1", "1.0", "malignant"}, {"false", "0", "0.0", "benign"}


def fitzpatrick(value) -> str:
    """A reported Fitzpatrick type as `I`..`VI` or a group `I-II`, `III-IV`, `V-VI`; '' when unknown (-1, empty)."""
    v = clean(value).upper().replace(" ", "")
    try:  # pandas writes a column with gaps as floats: 3.0, 12.0
        f = float(v)
        v = str(int(f)) if f.is_integer() else v
    except ValueError:
        pass
    if v in ROMAN:
        return v
    if v.isdigit() and 1 <= int(v) <= 6:
        return ROMAN[int(v) - 1]
    return GROUPED.get(v, "")


def _label(value: str | None, said: str, policy: ArchivePolicy) -> tuple[str | None, str, dict]:
    """(label, why not, extra) for a layout's reading of a row: a label, IND (the policy's), or None."""
    if value in LABELS:
        return value, "", {}
    if value == IND:
        if policy.indeterminate == "quarantine":
            return None, f"{said}: indeterminate; ingest.indeterminate is quarantine", {"reason": INDETERMINATE}
        return policy.indeterminate, "", {}
    return None, said, {}  # resolve_rows: unknown label


def _id(file_name: str) -> str:
    """The image id of a file name: its stem. Only an image extension is cut, so that an unsafe name
    ('../x.png', 'a/b.png') stays unsafe and resolve_rows quarantines it as such."""
    v = clean(file_name)
    suffix = PurePosixPath(v).suffix
    return v[: -len(suffix)] if suffix.lower() in IMAGE_EXTENSIONS else v


def _resolve(name: str, rows: list, root: Path, folder: Path, empty: int) -> SourceResult:
    res = resolve_rows(name, rows, root, index_images(folder))
    res.empty_rows = empty
    return res


def _ddi(folder: Path, root: Path, name: str, policy: ArchivePolicy) -> SourceResult:
    path = metadata_file(folder, [DDI_METADATA])
    df, empty = read_table(path, ["DDI_file"])
    col = next((c for c in ("malignant", "malignancy(malig=1)") if c in df.columns), None)
    if col is None:
        raise IngestError(f"{path}: no label column (malignant, or malignancy(malig=1) in older releases); "
                          f"found {list(df.columns)}")
    rows = []
    for r in df.to_dict("records"):
        v = clean(r[col]).lower()
        value = "malignant" if v in TRUE else "benign" if v in FALSE else None
        label, why, extra = _label(value, f"{col} {clean(r[col])!r} is not True/False or 1/0", policy)
        rows.append((_id(r["DDI_file"]), label, why,
                     {"lesion_id": clean(r.get("DDI_ID")), "diagnosis": clean(r.get("disease")),
                      "fitzpatrick_skin_type": fitzpatrick(r.get("skin_tone")), **extra}))
    return _resolve(name, rows, root, folder, empty)


def _pad(folder: Path, root: Path, name: str, policy: ArchivePolicy) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [PAD_METADATA]), ["img_id", "diagnostic"])
    rows = []
    for r in df.to_dict("records"):
        dx = clean(r["diagnostic"]).upper()
        label, why, extra = _label(PAD_LABELS.get(dx), f"diagnostic {dx!r}" + ("" if dx in PAD_LABELS else
                                   f" is not one of {list(PAD_LABELS)}"), policy)
        region = clean(r.get("region")).upper()
        rows.append((_id(r["img_id"]), label, why,
                     {"lesion_id": clean(r.get("lesion_id")), "patient_id": clean(r.get("patient_id")),
                      "diagnosis": dx, "fitzpatrick_skin_type": fitzpatrick(r.get("fitspatrick", r.get("fitzpatrick"))),
                      **attributes({**r, "region": PAD_REGIONS.get(region, region)}, "gender", "age", "region"),
                      **extra}))
    return _resolve(name, rows, root, folder, empty)


def _fitzpatrick17k(folder: Path, root: Path, name: str, policy: ArchivePolicy) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [F17K_METADATA]), ["md5hash", "three_partition_label"])
    # the column, not each row, falls back: one annotation scheme per set, never mixed row by row
    skin = "fitzpatrick_scale" if "fitzpatrick_scale" in df.columns else "fitzpatrick_centaur"
    rows = []
    for r in df.to_dict("records"):
        part = clean(r["three_partition_label"]).lower()
        why = ("three_partition_label 'non-neoplastic': not a neoplasm" if part == "non-neoplastic" else
               f"three_partition_label {part!r} is not benign, malignant or non-neoplastic")
        label, why, extra = _label(part, why, policy)
        rows.append((clean(r["md5hash"]), label, why,
                     {"diagnosis": clean(r.get("label")), "fitzpatrick_skin_type": fitzpatrick(r.get(skin)), **extra}))
    return _resolve(name, rows, root, folder, empty)


def _milk_truth(folder: Path, policy: ArchivePolicy) -> dict[str, tuple[str | None, str, dict]]:
    """lesion_id -> (label, why not, extra) from the one-hot ground truth (empty without the file)."""
    path = metadata_file(folder, [MILK_TRUTH], required=False)
    if path is None:
        return {}
    df, _ = read_table(path, ["lesion_id"])
    classes = [c for c in MILK_LABELS if c in df.columns]
    out: dict[str, tuple[str | None, str, dict]] = {}
    for r in df.to_dict("records"):
        lesion = clean(r["lesion_id"])
        hot = [c for c in classes if pd.to_numeric(clean(r[c]), errors="coerce") > 0.5]
        if len(hot) != 1:
            got = (None, f"ground truth of {lesion} names {hot or 'no class'}, not one of {classes}", {})
        elif hot[0] == "INF":
            got = (None, "ground truth INF (inflammatory): not a neoplasm", {"diagnosis": "INF"})
        else:
            label, why, extra = _label(MILK_LABELS[hot[0]], f"ground truth {hot[0]}", policy)
            got = (label, why, {"diagnosis": hot[0], **extra})
        if lesion in out and out[lesion][:2] != got[:2]:  # resolve_rows reads a why starting so as conflicting
            got = (None, f"conflicting ground truth rows for {lesion}", {})
        out[lesion] = got
    return out


def _milk10k(folder: Path, root: Path, name: str, policy: ArchivePolicy) -> SourceResult:
    df, empty = read_table(metadata_file(folder, [MILK_METADATA]), ["isic_id"])
    truth = _milk_truth(folder, policy)
    rows = []
    for r in df.to_dict("records"):
        # parse_row applies the archive's policy: synthetic, image_types, altered, then diagnosis_1
        image_id, label, why, extra = isic_archive.parse_row(r, policy)
        if label is None and extra.get("reason") == UNKNOWN_LABEL and not clean(r.get("diagnosis_1")):
            lesion = extra["lesion_id"]
            label, why, more = truth.get(lesion, (None, f"no diagnosis_1 and no ground truth row for {lesion!r}", {}))
            extra = {k: v for k, v in extra.items() if k != "reason"}
            extra.update({**more, "diagnosis": extra["diagnosis"] or more.get("diagnosis", "")})
        rows.append((image_id, label, why, {**extra, "skin_tone_class": clean(r.get("skin_tone_class"))}))
    return _resolve(name, rows, root, folder, empty)


def _csv_file(folder: Path) -> Path:
    found = sorted(p.name for p in folder.glob("*.csv") if p.is_file())
    if CSV_PREFERRED in found or len(found) == 1:
        return metadata_file(folder, [CSV_PREFERRED if CSV_PREFERRED in found else found[0]])
    raise IngestError(f"{folder}: " + (f"several CSV files {found} and no {CSV_PREFERRED}; name the labels "
                                       f"{CSV_PREFERRED}" if found else "no CSV file (path,label)"))


def _csv(folder: Path, root: Path, name: str, policy: ArchivePolicy) -> SourceResult:
    df, empty = read_table(_csv_file(folder), ["path", "label"])
    skin = next((c for c in ("fitzpatrick", "skin_type") if c in df.columns), None)
    base = folder.resolve()
    rows, unsafe, index = [], [], ImageIndex()
    for r in df.to_dict("records"):
        path = clean(r["path"])
        image_id = clean(r.get("image_id")) or PurePosixPath(path).stem
        if not path:
            unsafe.append(Quarantined(name, image_id, MISSING_FILE, "", "no path given"))
            continue
        try:  # a path (or a link on it) that leads out of the folder is never read
            real = safe_join(folder, path)
        except UserValueError:
            unsafe.append(Quarantined(name, image_id, UNSAFE_PATH, "", f"{path!r} leads out of {folder.name}/"))
            continue
        if real.is_file():  # only the listed files: images the CSV does not name are no orphans here
            index.files.setdefault(image_id, []).append(folder / real.relative_to(base))
        v = clean(r["label"]).lower()
        value = "malignant" if v in TRUE else "benign" if v in FALSE else None
        label, why, extra = _label(value, f"label {clean(r['label'])!r} is not benign/malignant or 1/0", policy)
        rows.append((image_id, label, why,
                     {"lesion_id": clean(r.get("lesion_id")), "patient_id": clean(r.get("patient_id")),
                      "diagnosis": clean(r.get("diagnosis")), "fitzpatrick_skin_type": fitzpatrick(r.get(skin)),
                      "skin_tone_class": clean(r.get("skin_tone_class")),
                      **attributes(r, "sex", "age", "site"), **extra}))
    res = resolve_rows(name, rows, root, index)
    res.quarantined += unsafe
    res.empty_rows = empty
    return res


_READERS = {"ddi": _ddi, "pad_ufes_20": _pad, "fitzpatrick17k": _fitzpatrick17k, "milk10k": _milk10k, "csv": _csv}


def read(layout: str, folder: Path, root: Path, name: str, policy: ArchivePolicy | None = None) -> SourceResult:
    """Records of the external set `name` (Record.source == name) in `folder`; Record.file relative to `root`
    (root is the parent of folder, e.g. data/raw/external; pass it to resolve_rows as raw_root)."""
    if layout not in _READERS:
        raise IngestError(f"unknown external test set layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    return _READERS[layout](Path(folder), Path(root), name, policy or ArchivePolicy.default())


def detect(folder: Path) -> str | None:
    """Which layout `folder` looks like, by its metadata file (PAD-UFES-20's generic metadata.csv and the
    generic CSV by their header too); None when it looks like none."""
    folder = Path(folder)
    for layout, meta in (("ddi", DDI_METADATA), ("fitzpatrick17k", F17K_METADATA), ("milk10k", MILK_METADATA)):
        if find_file(folder, [meta]):
            return layout
    if {"img_id", "diagnostic"} <= set(header(find_file(folder, [PAD_METADATA]))):
        return "pad_ufes_20"
    try:
        if {"path", "label"} <= set(header(_csv_file(folder))):
            return "csv"
    except IngestError:
        pass
    return None
