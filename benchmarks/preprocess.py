"""Preprocessing at real image sizes, measured side by side in one run.

    python benchmarks/preprocess.py [--raw DIR] [--images 600] [--big 12]

1. Throughput of the preprocess stage's library call on all cores, at 512 px and at 64 px output,
   working at the raw resolution (`work_scale: 0`, as before) vs at the working resolution
   (params.yaml's `work_scale`). --raw: a raw folder, e.g. the scale profile's
   (`dermsynth demo-data --scale 0.06 --out /tmp/scale`: 600 x 450 HAM10000 JPEGs); without it a
   HAM10000-only scale profile of ~600 images is written to a temp folder first.
2. Decoding 4000 x 3000 JPEGs at full size vs at reduced (DCT) scale, and the PSNR of the final
   512-px image made from each.
3. Hair removal and lesion centring scored on phantoms with known hairs and lesions
   (dermsynth.demo.hair_score), both ways.
4. The same preprocessing scored on real photographs with expert masks (dermsynth.data.devset),
   at 64 and 512 px, against issue 17's targets: --real DIR (or DERMSYNTH_REAL_PHOTOS), a development
   set as docs/real_photos.md describes; skipped without one.
5. Where the time of one image goes (1 core, 600 x 450): field of view, hair mask, inpainting,
   segmentation, skin tone, crop and resize, each timed alone on the same images.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from dermsynth.config import from_block
from dermsynth.data import devset
from dermsynth.data.fov import field_of_view
from dermsynth.data.hair import hair_mask
from dermsynth.demo.hair_score import score_centring, score_hair_removal
from dermsynth.data.images import decode
from dermsynth.data.ingest import ingest
from dermsynth.data.lesion import segment
from dermsynth.data.prepare import preprocess_all
from dermsynth.data.preprocess import PrepConfig, prepare_image, preprocess_image, skin_ita, to_working
from dermsynth.demo.phantom import STYLES, render, sample_lesion
from dermsynth.parallel import n_workers


def _config() -> PrepConfig:
    p = yaml.safe_load(open("params.yaml"))["prepare"]
    return from_block(PrepConfig, {k: v for k, v in p.items() if k in PrepConfig.__dataclass_fields__})


def throughput(raw: Path, n: int, cfg: PrepConfig, tmp: Path) -> None:
    manifest = ingest(raw, min_size=32).manifest.head(n)
    cores = n_workers(0)
    print(f"\n1. preprocess {len(manifest)} raw images ({manifest.width.iloc[0]} x {manifest.height.iloc[0]}), "
          f"{cores} cores, images/s (best of 2, interleaved):")
    print(f"  {'output':>7} {'raw resolution':>15} {'working res':>12} {'ratio':>6}")
    for size in (512, 64):
        best = {}
        for _ in range(2):
            for ws in (0, cfg.work_scale):
                c = dataclasses.replace(cfg, size=size, work_scale=ws)
                t = time.perf_counter()
                preprocess_all(manifest, raw, tmp / f"out{size}-{ws}", tmp, c, 0)
                best[ws] = min(best.get(ws, 1e9), time.perf_counter() - t)
        old, new = len(manifest) / best[0], len(manifest) / best[cfg.work_scale]
        print(f"  {size:>5}px {old:>15.1f} {new:>12.1f} {new / old:>5.2f}x")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def big_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """4000 x 3000 JPEGs (q 90) with full-resolution sensor noise, so their entropy is realistic."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        small = render(sample_lesion(("benign", "malignant")[i % 2], rng), STYLES["isic2020"], 1000, 750, rng)
        big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        big = np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def decoding(n: int, cfg: PrepConfig) -> None:
    cfg = dataclasses.replace(cfg, size=512, work_scale=2)
    files = big_jpegs(n)
    print(f"\n2. {n} JPEGs of 4000 x 3000 ({np.mean([len(f) for f in files]) / 1e6:.1f} MB each), "
          f"to 512 px (working side {cfg.working_short}), 1 core:")
    cv2.setNumThreads(1)
    times = {0: [], cfg.working_short: []}
    finals = {0: [], cfg.working_short: []}
    for data in files:  # interleaved, so drift on a noisy machine hits both alike
        for short in times:
            t = time.perf_counter()
            img, _ = decode(data, "bench", short)
            times[short].append(time.perf_counter() - t)
            finals[short].append(preprocess_image(img, cfg))
    full, reduced = np.median(times[0]), np.median(times[cfg.working_short])
    psnr = [_psnr(a, b) for a, b in zip(finals[0], finals[cfg.working_short])]
    print(f"  decode full {full * 1000:.0f} ms, reduced {reduced * 1000:.0f} ms: {full / reduced:.2f}x faster")
    print(f"  PSNR of the final 512-px image, reduced vs full decoding: min {min(psnr):.1f} dB, "
          f"median {np.median(psnr):.1f} dB")


def hair(cfg: PrepConfig) -> None:
    print("\n3. hair removal on 24 phantoms of 600 x 450 with known hairs (dermsynth.demo.hair_score):")
    keys = ["removed", "removed_over_lesion", "lesion_error", "lesion_error_off_hair", "lesion_error_without_removal"]
    print(f"  {'output':>6} {'work':>6} " + " ".join(f"{k:>14}" for k in ["hair removed", "over lesion",
                                                                         "lesion err", "off hair", "no removal"]))
    for size in (512, 64):
        for ws in (0, cfg.work_scale):
            s = score_hair_removal(dataclasses.replace(cfg, size=size, work_scale=ws))
            print(f"  {size:>4}px {str(s['working_short_side']):>6} " + " ".join(f"{s[k]:>14}" for k in keys))


def centring(cfg: PrepConfig) -> None:
    print("\n   lesion centring on 24 phantoms of 600 x 450 with known lesion masks:")
    for size in (512, 64):
        print(f"  {size:>4}px {score_centring(dataclasses.replace(cfg, size=size))}")


def real(root: Path | None, cfg: PrepConfig) -> None:
    if root is None or not (root / "metadata.csv").is_file():
        print("\n4. real photographs: no development set (--real DIR or DERMSYNTH_REAL_PHOTOS): skipped")
        return
    keys = ["centred_whole", "centred_whole_fitting", "without_lesion", "dice_median", "hair_masked_lesion_median",
            "fine_structure_median", "rim_share_max", "ita_measured", "ita_10_70", "ita_above_90", "fallback"]
    rows = {size: devset.score(root, dataclasses.replace(cfg, size=size))[1] for size in (64, 512)}
    print(f"\n4. real photographs ({rows[64]['images']} in {root}, {rows[64]['with_mask']} with expert masks, "
          f"{rows[64]['hair_free_with_mask']} hair-free):")
    print(f"  {'score':<28} {'64 px':>8} {'512 px':>8} {'target':>8}")
    for k in keys:
        print(f"  {k:<28} {rows[64][k]!s:>8} {rows[512][k]!s:>8} {devset.TARGETS.get(k, '')!s:>8}")


def _timed(times: list, fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    times.append(time.perf_counter() - t)
    return out


def stage_costs(cfg: PrepConfig, n: int = 24) -> None:
    rng = np.random.default_rng(0)
    imgs = [render(sample_lesion(("benign", "malignant")[i % 2], rng), STYLES["isic2019"], 600, 450, rng)
            for i in range(n)]
    cv2.setNumThreads(1)
    print(f"\n5. one image's steps, {n} images of 600 x 450, 1 core, median ms:")
    for size in (512, 64):
        c = dataclasses.replace(cfg, size=size)
        t = {k: [] for k in ("field", "hair", "inpaint", "segment", "skin tone", "whole")}
        for img in imgs:
            work = to_working(img, c.working_short)
            fov = _timed(t["field"], field_of_view, work)
            hm = _timed(t["hair"], hair_mask, work, c.hair_kernel, c.hair_threshold, c.hair_min_length,
                        c.pale_hair_threshold)
            clean = _timed(t["inpaint"], cv2.inpaint, work, hm, c.inpaint_radius, cv2.INPAINT_TELEA)
            les = _timed(t["segment"], segment, clean, fov)
            _timed(t["skin tone"], skin_ita, clean, fov, les.mask, hm, c.color_constancy)
            _timed(t["whole"], prepare_image, work, c)
        print(f"  {size:>4}px: " + ", ".join(f"{k} {np.median(v) * 1000:.1f}" for k, v in t.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=None)
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--big", type=int, default=12)
    ap.add_argument("--real", default=os.environ.get("DERMSYNTH_REAL_PHOTOS") or None)
    args = ap.parse_args()
    cfg = _config()
    tmp = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    raw = Path(args.raw) if args.raw else None
    if raw is None:
        from dermsynth.demo.layouts import scale_specs, write_demo

        raw = write_demo(tmp / "raw", seed=0, specs=scale_specs(args.images / 10_015, ("ham10000",)), defects=False)
    throughput(raw, args.images, cfg, tmp)
    decoding(args.big, cfg)
    hair(cfg)
    centring(cfg)
    real(Path(args.real) if args.real else None, cfg)
    stage_costs(cfg)


if __name__ == "__main__":
    main()
