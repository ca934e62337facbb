"""The prepared set: preprocessed images, duplicate groups and splits in one manifest."""
from __future__ import annotations

import errno
import functools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dermsynth.contracts import PREPARED_COLUMNS, PREPARED_EXTRA_COLUMNS
from dermsynth.data.dedup import near_duplicate_pairs, phash64
from dermsynth.data.images import load_image
from dermsynth.data.preprocess import PrepConfig, prepare_image, to_working
from dermsynth.data.sheet import before_after
from dermsynth.data.split import assign_splits, group_ids
from dermsynth.data.subgroups import skin_tone
from dermsynth.errors import UserFileError
from dermsynth.parallel import pmap

# what preprocessing found, per image, as manifest columns (dermsynth.contracts: PREPARED_EXTRA_COLUMNS)
FINDINGS = ("centring", "lesion_confidence", "crop_px", "upscale", "rim_filled")


def _one(raw_root: Path, out_dir: Path, repo_root: Path, cfg: PrepConfig,
         row: tuple[str, str, str, str, str]) -> tuple[str, int, float, tuple]:
    source, image_id, file, width, height = row
    work = to_working(load_image(raw_root, file, cfg.working_short), cfg.working_short)
    raw_short = min(int(width), int(height)) if str(width).isdigit() and str(height).isdigit() else 0
    p = prepare_image(work, cfg, raw_short)
    dst = out_dir / source / f"{image_id}.png"
    # PNG, not JPEG: lossless, and the same pixels give the same bytes (DVC hashes stay put).
    write_png(dst, p.image)
    # skin tone from the whole photograph's field of view: the centred crop is mostly lesion
    findings = (p.centring, p.confidence, p.crop_px, p.upscale, p.rim_filled)
    return dst.relative_to(repo_root).as_posix(), phash64(p.image), p.ita, findings


def write_png(dst: Path, rgb: np.ndarray) -> None:
    """Encode, then write with Python: a failed write raises (cv2.imwrite only returns False, and a full
    disk would go on "writing" every later image); the error names the file (a write error alone does not)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{dst}: OpenCV could not encode a {rgb.shape} image as PNG")
    try:
        dst.write_bytes(buf.tobytes())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(dst)) from None


def preprocess_all(interim: pd.DataFrame, raw_root: Path, out_dir: Path, repo_root: Path, cfg: PrepConfig,
                   workers: int = 0) -> pd.DataFrame:
    """Write every manifest image preprocessed under `out_dir/<source>/<id>.png`."""
    for s in interim["source"].unique():
        (out_dir / s).mkdir(parents=True, exist_ok=True)
    rows = list(zip(interim["source"], interim["image_id"], interim["file"], interim["width"], interim["height"]))
    fn = functools.partial(_one, raw_root.resolve(), out_dir.resolve(), repo_root.resolve(), cfg)
    try:
        done = pmap(fn, rows, workers, desc="preprocess")
    except OSError as e:  # the first failed write stops the stage (workers stop with the pool)
        written = sum(1 for f in out_dir.rglob("*.png") if str(f) != e.filename)  # whole images only
        what = "disk full" if e.errno == errno.ENOSPC else f"cannot write ({e.strerror})"
        raise UserFileError(f"{what} writing {e.filename}: {written} images written, re-run after freeing "
                            "space (the prepared set is rebuilt whole)") from None
    df = interim.copy()
    df["path"] = [p for p, _, _, _ in done]
    df["phash"] = [f"{h:016x}" for _, h, _, _ in done]
    df["ita"] = [round(a, 2) for _, _, a, _ in done]  # NaN (empty in the CSV) when too little skin shows
    df["skin_tone"] = [skin_tone(a) for _, _, a, _ in done]
    for i, col in enumerate(FINDINGS):
        df[col] = [f[i] for _, _, _, f in done]
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
    # the archive's own word on skin type (ISIC Archive rows), kept beside the measured ITA; empty elsewhere
    out["fitzpatrick_skin_type"] = out.get("fitzpatrick_skin_type", pd.Series("", index=out.index)).fillna("")
    for col in FINDINGS:  # manifests from before the field of view and segmentation: unknown
        if col not in out:
            out[col] = np.nan if col != "centring" else "unknown"
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
        "fitzpatrick_vs_skin_tone": reported_vs_measured(out),
        "centring": {k: int(v) for k, v in out["centring"].value_counts().sort_index().items()},
        "upscale": _quantiles(out["upscale"]),
        "crop_px": _quantiles(out["crop_px"]),
        "rim_filled": _quantiles(out["rim_filled"]),
    }
    return out, summary


def reported_vs_measured(manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Images by reported Fitzpatrick type, then by measured ITA band: where the two disagree is where the
    skin-tone estimate (or the archive's record) deserves a look. {} when no image reports a type."""
    known = manifest[manifest["fitzpatrick_skin_type"].astype(str) != ""]
    return {t: {band: int(n) for band, n in g["skin_tone"].value_counts().sort_index().items()}
            for t, g in known.groupby("fitzpatrick_skin_type", sort=True)}


def _quantiles(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return {}
    return {"min": float(v.min()), "median": float(v.median()), "p90": float(v.quantile(0.9)), "max": float(v.max()),
            "above_1": int((v > 1).sum())}


def example_grid(interim: pd.DataFrame, raw_root: Path, cfg: PrepConfig, n: int = 6, seed: int = 0) -> np.ndarray:
    """A before/after sheet (dermsynth.data.sheet) of a few images, as one RGB array."""
    pick = interim.sample(min(n, len(interim)), random_state=seed)
    raws = [to_working(load_image(raw_root, f, cfg.working_short), cfg.working_short) for f in pick["file"]]
    return before_after(raws, cfg, [f"{s} {i}" for s, i in zip(pick["source"], pick["image_id"])])
