"""A released synthetic set (Derm-T2IM's 6,000 PNGs, say) imported as the pipeline's synthetic set.

`generate.source` names it (dermsynth.synthetic_source.source_problems says what it may be): a folder with one
subfolder per class (`benign/`, `malignant/`, searched below too; hidden files skipped and counted), or
a CSV file of `path,label[,prompt,negative_prompt,sampler,steps,cfg,seed]` rows, paths relative to the
CSV's folder. The set is untrusted input, read the way ingest reads raw archives
(dermsynth.data.images): nothing outside its folder (a `..`, an absolute path or a link leading out is
quarantined as `unsafe path`, never read), never more than `MAX_IMAGE_BYTES` per file, only the
allow-listed formats. Every file that cannot be used is quarantined with its reason in
`reports/generate/quarantine.csv` (contracts.QUARANTINE_COLUMNS), never dropped without a word.

Each usable image becomes what the generator writes: a square RGB PNG of `prepare.size` px (a
non-square image is cropped to its centred square first; shrunk with area averaging, enlarged bicubic,
as preprocess sizes the real images) named `<out>/images/<label>/syn_<label>_<i:05d>.png`, `i` counting
the class's images in the order of their file names, and a metadata.csv row with the generator's
columns (contracts.METADATA_COLUMNS): what the release does not say is empty, `source` is
generate.source, `source_file` the file in the set and `sha256` the hash of its original bytes.

`n_per_class` > 0 takes that many per class, the first usable ones in an order shuffled by `seed`
(data_seed), so the draw is the same on every run; fewer usable images than asked is an error. 0 takes
every usable image, and the synthetic gate then checks that every one of them arrived
(`<out>/import.json` records how many there were).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.contracts import METADATA_COLUMNS, QUARANTINE_COLUMNS
# _read_file, not read_bytes: read_bytes takes a '#' in a name for an hdf5 entry (`file.hdf5#key`), and a
# release may well name a file `lesion#12.png`; the bounds and the refusals are the same
from dermsynth.data.images import _read_file, decode
from dermsynth.data.records import ImageProblem, UnsafePath, safe_join
from dermsynth.diffusion.released_listing import Candidate, ImportConfig, _quarantine, list_set
from dermsynth.errors import UserFileError, UserValueError
from dermsynth.files import write_json
from dermsynth.parallel import pmap
from dermsynth.paths import replace_output_dir
from dermsynth.synthetic_source import source_problems

IMPORT_RECORD = "import.json"  # beside metadata.csv: how the set was imported, what the gate checks against


def square(img: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """The centred square of `img` at `size` px (area averaging down, bicubic up, as preprocess.resize),
    and whether it had to be cropped."""
    import cv2

    h, w = img.shape[:2]
    cropped = h != w
    if cropped:
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC)
    return np.ascontiguousarray(img), cropped


def _convert(job: tuple[str, str, str, int, int, int]) -> dict:
    """One file of the set to its PNG at `dst` (worker process): sha256, original size, or the problem."""
    from PIL import Image

    base, file, dst, size, max_bytes, max_pixels = job
    try:
        try:
            path = safe_join(Path(base), file)  # checked when listed; checked again when read
        except (ValueError, RuntimeError, OSError) as e:
            raise UnsafePath(f"{file}: {e}") from e
        data = _read_file(path, file, max_bytes)
        img, (w, h) = decode(data, file, min_short=size, max_pixels=max_pixels)
    except ImageProblem as e:
        return {"ok": False, "reason": e.reason, "detail": e.detail}
    out, cropped = square(img, size)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG")
    tmp = Path(dst + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, dst)  # atomic: a killed import never leaves half an image
    return {"ok": True, "sha256": hashlib.sha256(data).hexdigest(), "width": w, "height": h, "cropped": cropped}


def _convert_all(base: Path, batch: list[tuple[int, Candidate]], staging: Path, cfg: ImportConfig,
                 desc: str) -> list[dict]:
    """Each (candidate number, candidate) of `batch` converted to `staging/<label>/<number>.png`, in order."""
    jobs = [(str(base), c.file, str(staging / c.label / f"{k}.png"), cfg.size, cfg.max_image_bytes, cfg.max_pixels)
            for k, c in batch]
    return pmap(_convert, jobs, cfg.workers, desc=desc) if jobs else []


def _take_class(label: str, ci: int, cands: list[Candidate], base: Path, staging: Path,
                cfg: ImportConfig) -> tuple[list[tuple[int, Candidate, dict]], list[dict]]:
    """The class's usable images, converted into `staging` (all, or the first n_per_class of a seeded order),
    sorted by file, and a quarantine row for each unusable one it read."""
    mine = [(k, c) for k, c in enumerate(cands) if c.label == label]
    if cfg.n_per_class > 0:
        order = np.random.default_rng([cfg.seed, ci, 0x1A7]).permutation(len(mine))
        mine = [mine[i] for i in order]
    good, quarantined, pos = [], [], 0
    while pos < len(mine) and (cfg.n_per_class == 0 or len(good) < cfg.n_per_class):
        # all of the class, or as many as are still wanted: files past the n-th usable one are never read
        step = len(mine) if cfg.n_per_class == 0 else cfg.n_per_class - len(good)
        batch = mine[pos:pos + step]
        pos += len(batch)
        for (k, c), res in zip(batch, _convert_all(base, batch, staging, cfg, f"import {label}")):
            if res["ok"]:
                good.append((k, c, res))
            else:
                quarantined.append(_quarantine(cfg.source, c.file, res["reason"], res["detail"]))
    return sorted(good, key=lambda g: g[1].file), quarantined


def _check_enough(kept: dict[str, list], cfg: ImportConfig, quarantine: pd.DataFrame,
                  quarantine_file: str | Path | None) -> None:
    where = f" ({len(quarantine)} quarantined: {quarantine_file})" if len(quarantine) and quarantine_file else ""
    for label in cfg.classes:
        n = len(kept[label])
        if cfg.n_per_class > 0 and n < cfg.n_per_class:
            raise UserValueError(f"generate.n_per_class={cfg.n_per_class}: {cfg.source} has only {n} usable {label} "
                                 f"images{where}; ask for fewer, or 0 for all of them")
        if n == 0:
            raise UserValueError(f"generate.source: {cfg.source} has no usable {label} image{where}")


def _place(kept: dict[str, list], cfg: ImportConfig, staging: Path, repo_root: Path, rel_out: str) -> pd.DataFrame:
    """The kept images moved from `staging` to their ids' paths, the rest of `staging` removed; the metadata."""
    rows = []
    for label in cfg.classes:
        for i, (k, c, res) in enumerate(kept[label]):
            image_id = f"syn_{label}_{i:05d}"
            path = f"{rel_out}/images/{label}/{image_id}.png"
            os.replace(staging / label / f"{k}.png", repo_root / path)
            rows.append({**{col: "" for col in METADATA_COLUMNS}, **c.meta, "image_id": image_id, "label": label,
                         "path": path, "source": cfg.source, "source_file": c.file, "sha256": res["sha256"]})
    for label in cfg.classes:  # what was read and not kept: files past the draw of n_per_class
        for f in (staging / label).iterdir():
            f.unlink()
        (staging / label).rmdir()
    staging.rmdir()
    return pd.DataFrame(rows, columns=METADATA_COLUMNS)


def _summary(kept: dict[str, list], cfg: ImportConfig, kind: str, meta: pd.DataFrame, quarantine: pd.DataFrame,
             found: dict[str, int], skipped: dict, elapsed: float) -> dict:
    results = [res for label in cfg.classes for _, _, res in kept[label]]
    sizes = pd.Series([f"{r['width']}x{r['height']}" for r in results]).value_counts()
    return {
        "mode": "import", "source": cfg.source, "format": kind, "images": len(meta),
        "per_class": {label: len(kept[label]) for label in cfg.classes},
        "n_per_class": cfg.n_per_class,
        "selection": "every usable image" if cfg.n_per_class == 0 else
                     f"{cfg.n_per_class} per class, drawn in an order seeded by data_seed={cfg.seed}",
        # files (CSV rows) of each class in the set, before any was read
        "found": found,
        # every usable image of each class (n_per_class 0 only: a draw stops reading once it has enough)
        "usable": {label: len(kept[label]) for label in cfg.classes} if cfg.n_per_class == 0 else None,
        "quarantined": int(len(quarantine)),
        "quarantined_per_reason": {str(k): int(v) for k, v in quarantine.reason.value_counts().sort_index().items()},
        "skipped": skipped,
        "original_sizes": {str(k): int(v) for k, v in sizes.head(5).items()},
        "cropped_to_square": int(sum(r["cropped"] for r in results)),
        "size": cfg.size,
        "duplicate_files": int(meta.sha256.duplicated().sum()),
        "timings": {"seconds": round(elapsed, 1), "images_per_second": round(len(meta) / elapsed, 2) if elapsed else None},
    }


def import_released(cfg: ImportConfig, out_dir: str | Path, repo_root: str | Path = ".",
                    quarantine_file: str | Path | None = None,
                    outputs: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Import the set `cfg.source` into `out_dir` (images/, metadata.csv, import.json); returns the metadata,
    the quarantine (also written to `quarantine_file`, before any error about too few images) and a summary.
    `outputs`: the paths.* block, which the set may not overlap (as the params schema checks)."""
    t0 = time.perf_counter()
    repo_root, out_dir = Path(repo_root).resolve(), Path(out_dir)
    problems = source_problems(cfg.source, cfg.classes, repo_root, outputs)
    if problems:
        raise UserFileError("\n".join(f"generate.source: {p}" for p in problems))
    src = (repo_root / cfg.source).resolve()  # the set may be a link to another disk
    kind, base, (cands, quarantined, skipped) = list_set(src, cfg)
    rel_out = os.path.relpath(out_dir.resolve(), repo_root)

    replace_output_dir(out_dir, "paths.synthetic")  # only a folder the pipeline made is deleted
    staging = out_dir / ".importing"  # hidden: numbered by candidate until the usable ones get their ids
    for label in cfg.classes:
        (staging / label).mkdir(parents=True, exist_ok=True)
        (out_dir / "images" / label).mkdir(parents=True, exist_ok=True)

    found = {label: sum(c.label == label for c in cands) for label in cfg.classes}
    kept = {}
    for ci, label in enumerate(cfg.classes):
        kept[label], bad = _take_class(label, ci, cands, base, staging, cfg)
        quarantined += bad

    quarantine = pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS)
    if quarantine_file is not None:
        Path(quarantine_file).parent.mkdir(parents=True, exist_ok=True)
        quarantine.to_csv(quarantine_file, index=False)
    _check_enough(kept, cfg, quarantine, quarantine_file)

    meta = _place(kept, cfg, staging, repo_root, rel_out)
    meta.to_csv(out_dir / "metadata.csv", index=False)

    summary = _summary(kept, cfg, kind, meta, quarantine, found, skipped, time.perf_counter() - t0)
    record = {k: v for k, v in summary.items() if k != "timings"} | {"config": asdict(cfg)}
    write_json((out_dir / IMPORT_RECORD), record)
    return meta, quarantine, summary


def import_record(synthetic_dir: str | Path) -> dict | None:
    """`<synthetic>/import.json` of an imported set; None for a generated one."""
    f = Path(synthetic_dir) / IMPORT_RECORD
    return json.loads(f.read_text()) if f.is_file() else None
