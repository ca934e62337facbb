"""The prepared set: preprocessed images, duplicate groups and splits in one manifest."""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dermsynth.contracts import PREPARED_COLUMNS, PREPARED_EXTRA_COLUMNS
from dermsynth.data.dedup import near_duplicate_pairs, phash64
from dermsynth.data.images import load_image
from dermsynth.data.preprocess import PrepConfig, preprocess_image, remove_hair, to_working
from dermsynth.data.split import assign_splits, group_ids
from dermsynth.data.subgroups import ita, skin_tone
from dermsynth.parallel import pmap

# ITA is a colour median: 128 px of the whole photograph hold enough skin, and cost little at any size
ITA_SHORT = 128


def _one(raw_root: Path, out_dir: Path, repo_root: Path, cfg: PrepConfig,
         row: tuple[str, str, str]) -> tuple[str, int, float]:
    source, image_id, file = row
    work = to_working(load_image(raw_root, file, cfg.working_short), cfg.working_short)
    img = preprocess_image(work, cfg)
    dst = out_dir / source / f"{image_id}.png"
    # PNG, not JPEG: lossless, and the same pixels give the same bytes (DVC hashes stay put).
    cv2.imwrite(str(dst), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    # skin tone from the whole photograph: the centred crop is mostly lesion
    return dst.relative_to(repo_root).as_posix(), phash64(img), ita(to_working(work, ITA_SHORT))


def preprocess_all(interim: pd.DataFrame, raw_root: Path, out_dir: Path, repo_root: Path, cfg: PrepConfig,
                   workers: int = 0) -> pd.DataFrame:
    """Write every manifest image preprocessed under `out_dir/<source>/<id>.png`."""
    for s in interim["source"].unique():
        (out_dir / s).mkdir(parents=True, exist_ok=True)
    rows = list(zip(interim["source"], interim["image_id"], interim["file"]))
    fn = functools.partial(_one, raw_root.resolve(), out_dir.resolve(), repo_root.resolve(), cfg)
    done = pmap(fn, rows, workers, desc="preprocess")
    df = interim.copy()
    df["path"] = [p for p, _, _ in done]
    df["phash"] = [f"{h:016x}" for _, h, _ in done]
    df["ita"] = [round(a, 2) for _, _, a in done]  # NaN (empty in the CSV) when too little skin shows
    df["skin_tone"] = [skin_tone(a) for _, _, a in done]
    df["width"] = df["height"] = cfg.size
    return df


def build_manifest(df: pd.DataFrame, phash_distance: int, val_fraction: float, test_fraction: float,
                   seed: int) -> tuple[pd.DataFrame, dict]:
    """Add duplicate clusters, groups and splits; returns the manifest and a summary."""
    hashes = np.array([int(h, 16) for h in df["phash"]], dtype=np.uint64)
    pairs = near_duplicate_pairs(hashes, phash_distance)
    dup = group_ids(df.assign(lesion_id="", patient_id=""), pairs)
    groups = group_ids(df, pairs)
    out = df.copy()
    out["duplicate_cluster"] = dup
    out["group"] = groups
    out["split"] = assign_splits(out, groups, val_fraction, test_fraction, seed)
    for col in ("sex", "age_band", "site", "skin_tone"):  # manifests from before the attributes: all unknown
        if col not in out:
            out[col] = "unknown"
    if "ita" not in out:
        out["ita"] = np.nan
    out = out[PREPARED_COLUMNS + PREPARED_EXTRA_COLUMNS].sort_values(["source", "image_id"], ignore_index=True)
    dup_sizes = pd.Series(dup).value_counts()
    cross_src = out.groupby("duplicate_cluster")["source"].nunique()
    summary = {
        "images": int(len(out)),
        "groups": int(out["group"].nunique()),
        "duplicate_pairs": len(pairs),
        "images_in_duplicate_clusters": int(dup_sizes[dup_sizes > 1].sum()),
        "cross_source_duplicate_clusters": int((cross_src > 1).sum()),
        "splits": {s: {lab: int(n) for lab, n in g.groupby("label").size().items()} for s, g in out.groupby("split")},
        "skin_tone": {k: int(v) for k, v in out["skin_tone"].value_counts().sort_index().items()},
    }
    return out, summary


def example_grid(interim: pd.DataFrame, raw_root: Path, cfg: PrepConfig, n: int = 6, seed: int = 0,
                 tile: int = 160) -> np.ndarray:
    """Rows of [raw | hair removed | final] for a few images, as one RGB array."""
    pick = interim.sample(min(n, len(interim)), random_state=seed)
    rows = []
    for file in pick["file"]:
        raw = to_working(load_image(raw_root, file, cfg.working_short), cfg.working_short)
        h, w = raw.shape[:2]
        s = tile / max(h, w)
        fit = lambda im: cv2.copyMakeBorder(  # noqa: E731 - letterbox to a tile
            cv2.resize(im, (int(w * s), int(h * s))), 0, tile - int(h * s), 0, tile - int(w * s), cv2.BORDER_CONSTANT)
        hairless = remove_hair(raw, cfg.hair_kernel, cfg.hair_threshold, cfg.inpaint_radius) if cfg.hair_removal else raw
        final = cv2.resize(preprocess_image(raw, cfg), (tile, tile), interpolation=cv2.INTER_NEAREST)
        rows.append(np.hstack([fit(raw), fit(hairless), final]))
    return np.vstack(rows)
