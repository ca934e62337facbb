"""External test sets: read in their own archive's layout, checked and preprocessed like the training data,
never split, trained on or shown to the generator.

Each set lives below `<paths.raw>/external/` (so `data.dvc` versions it and ingest never reads it) and
becomes `<paths.testsets>/<name>/`: one PNG per usable image and a manifest (contracts.EXTERNAL_COLUMNS).
What cannot be used is quarantined with its reason, as at ingest; an image that is also in the prepared
set (a pHash within `prepare.phash_distance` of any prepared image) is quarantined too: a test image
that some classifier may have trained on measures nothing.
"""
from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.contracts import EXTERNAL_ATTRIBUTES, EXTERNAL_COLUMNS, MANIFEST_COLUMNS, QUARANTINE_COLUMNS
from dermsynth.data.dedup import near_duplicate_pairs
from dermsynth.data.images import MAX_IMAGE_BYTES, MAX_PIXELS
from dermsynth.data.ingest import EXTERNAL_FOLDER, check_record
from dermsynth.data.prepare import FINDINGS, preprocess_all
from dermsynth.data.preprocess import PrepConfig
from dermsynth.data.records import Quarantined
from dermsynth.data.sources import external
from dermsynth.data.sources.isic_archive import ArchivePolicy
from dermsynth.errors import UserFileError
from dermsynth.parallel import pmap

IN_PREPARED_SET = "also in the prepared set"  # quarantine reason: the same image may be in a training split


def external_root(raw_root: str | Path) -> Path:
    return Path(raw_root) / EXTERNAL_FOLDER


def _leaks(phash: pd.Series, prepared: pd.DataFrame, distance: int) -> dict[int, str]:
    """Row positions of `phash` within `distance` bits of a prepared image, with that image's id."""
    if not len(phash) or not len(prepared):
        return {}
    ours = np.array([int(h, 16) for h in phash], dtype=np.uint64)
    theirs = np.array([int(h, 16) for h in prepared["phash"]], dtype=np.uint64)
    n, out = len(ours), {}
    for a, b in near_duplicate_pairs(np.concatenate([ours, theirs]), distance):
        i, j = min(a, b), max(a, b)
        if i < n <= j:  # one external, one prepared: pairs inside either set are no leak
            out.setdefault(i, str(prepared["image_id"].iloc[j - n]))
    return out


def prepare_external(name: str, layout: str, folder: str, raw_root: str | Path, out_root: Path, repo_root: Path,
                     cfg: PrepConfig, prepared: pd.DataFrame, phash_distance: int, min_size: int = 64,
                     max_image_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_PIXELS, workers: int = 0,
                     policy: ArchivePolicy | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The set's manifest (contracts.EXTERNAL_COLUMNS; images written below `out_root/<name>/`) and its
    quarantine (contracts.QUARANTINE_COLUMNS, source = `name`)."""
    root = external_root(raw_root)
    where = root / folder
    if not where.is_dir():
        raise UserFileError(f"evaluate.external.{name}: {where} does not exist; put the {layout} download there "
                            "(docs/external_test_sets.md) and run `dvc commit data.dvc`")
    res = external.read(layout, where, root, name, policy)
    check = functools.partial(check_record, root, min_size, max_image_bytes, max_pixels)
    quarantined, rows = list(res.quarantined), []
    for rec, out in zip(res.records, pmap(check, res.records, workers, desc=f"external {name}: decoding")):
        if isinstance(out, Quarantined):
            quarantined.append(out)
        else:
            rows.append({**asdict(rec), "width": out[0], "height": out[1]})
    columns = [c for c in MANIFEST_COLUMNS if c != "also_in"] + ["skin_tone_class"]
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        df = preprocess_all(df, root, out_root, repo_root, cfg, workers)
        for i, kept_id in _leaks(df["phash"], prepared, phash_distance).items():
            r = df.iloc[i]
            quarantined.append(Quarantined(name, r["image_id"], IN_PREPARED_SET, r["file"],
                                           f"within {phash_distance} pHash bits of prepared image {kept_id}"))
            (repo_root / r["path"]).unlink()
        gone = {q.image_id for q in quarantined if q.reason == IN_PREPARED_SET}
        df = df[~df["image_id"].isin(gone)]
    else:
        df = df.assign(path="", phash="", ita=np.nan, skin_tone="unknown", **{c: np.nan for c in FINDINGS})
    df = df.assign(split="external", also_in="", duplicate_cluster="", group="")
    for col in EXTERNAL_ATTRIBUTES:
        df[col] = df[col].fillna("")
    quarantine = pd.DataFrame([q.row() for q in quarantined], columns=QUARANTINE_COLUMNS)
    return (df[EXTERNAL_COLUMNS].sort_values("image_id", ignore_index=True),
            quarantine.sort_values(["image_id", "reason"], ignore_index=True))


def summarise(manifest: pd.DataFrame, quarantine: pd.DataFrame, layout: str) -> dict:
    """What reports/external.json says of one set: images by class and skin type, quarantined by reason."""
    return {"layout": layout, "images": int(len(manifest)),
            "labels": {k: int(v) for k, v in manifest["label"].value_counts().sort_index().items()},
            **{attr: {k or "unknown": int(v) for k, v in manifest[attr].value_counts().sort_index().items()}
               for attr in EXTERNAL_ATTRIBUTES if (manifest[attr] != "").any()},
            "quarantined": {k: int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()}}
