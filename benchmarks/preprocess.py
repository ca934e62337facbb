"""Preprocessing throughput on one core vs all cores, measured side by side in one run.

    python benchmarks/preprocess.py [--images 300] [--raw data/raw]

Uses the demo raw set (written to a temp folder if --raw is absent) and the params.yaml settings.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from dermsynth.data.ingest import ingest
from dermsynth.data.prepare import preprocess_all
from dermsynth.data.preprocess import PrepConfig
from dermsynth.parallel import n_workers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default="data/raw")
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    raw = Path(args.raw)
    if not raw.is_dir():
        from dermsynth.demo.layouts import write_demo

        raw = write_demo(tmp / "raw", seed=0)
    p = yaml.safe_load(open("params.yaml"))["prepare"]
    cfg = PrepConfig(**{k: v for k, v in p.items() if k in PrepConfig.__dataclass_fields__})
    manifest = ingest(raw, min_size=32).manifest.head(args.images)
    cores = n_workers(0)
    best = {}
    for _ in range(args.repeats):  # interleaved, so drift on a noisy machine hits both alike
        for workers in (1, cores):
            t = time.perf_counter()
            preprocess_all(manifest, raw, tmp / f"out{workers}", tmp, cfg, workers)
            best[workers] = min(best.get(workers, 1e9), time.perf_counter() - t)
    n = len(manifest)
    print(f"\npreprocess {n} images at {cfg.size}px (best of {args.repeats}):")
    print(f"  1 core      : {n / best[1]:8.1f} images/s")
    print(f"  {cores} cores     : {n / best[cores]:8.1f} images/s")
    print(f"  speed-up    : {best[1] / best[cores]:.2f}x")


if __name__ == "__main__":
    main()
