"""Peak memory and time per stage on N and 4N images of the scale profile, side by side.

    python benchmarks/scale.py [--fraction 0.002] [--size 128] [--workers 0] [--stages ingest,preprocess]

Writes the scale profile (`dermsynth demo-data --scale F`, real image sizes) at F and 4F and runs,
each stage in its own process so its peak RSS is its own: ingest, preprocess, dedup + split,
LoRA latent caching + 5 steps (tiny model at --size), generation of one 16-image chunk, one
classifier epoch (mobilenetv2_100, which is also the audit's embedder here) and the audit. Prints
per stage seconds and peak RSS at N and 4N, their growth, and an extrapolation to the full
archives (58k unique images without ISIC 2024, 459k with it) by the growth exponent.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

STAGES = ["ingest", "preprocess", "dedup_split", "lora_cache_steps", "generate_chunk", "classifier_epoch", "audit"]
FULL = {"58k (no ISIC 2024)": 58_457, "459k (all four)": 459_516}


def child(stage: str, d: Path, size: int, workers: int) -> dict:
    """One stage in this process; returns what it measured."""
    t = time.perf_counter()
    if stage == "ingest":
        from dermsynth.data.ingest import ingest

        ingest(d / "raw", min_size=64, workers=workers).manifest.to_csv(d / "interim.csv", index=False)
    elif stage == "preprocess":
        from dermsynth.data.prepare import preprocess_all
        from dermsynth.data.preprocess import PrepConfig

        interim = pd.read_csv(d / "interim.csv", keep_default_na=False, dtype=str)
        preprocess_all(interim, d / "raw", d / "prepared", d, PrepConfig(size=size), workers).to_csv(d / "prep.csv", index=False)
    elif stage == "dedup_split":
        from dermsynth.data.prepare import build_manifest

        df = pd.read_csv(d / "prep.csv", keep_default_na=False, dtype={"image_id": str, "phash": str})
        build_manifest(df, 4, 0.15, 0.2, seed=0)[0].to_csv(d / "manifest.csv", index=False)
    elif stage == "lora_cache_steps":
        from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
        from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline

        build_tiny_pipeline(TinyConfig(image_size=size, seed=0)).save_pretrained(d / "models/base")
        m = pd.read_csv(d / "manifest.csv", keep_default_na=False)
        paths = m.loc[(m.split == "train") & (m.label == "benign"), "path"].tolist()
        cfg = LoraTrainConfig(max_steps=5, batch_size=8, checkpoint_every=5, rank=4, alpha=4)
        for label in ("benign", "malignant"):
            train_lora(d / "models/base", paths, label, d / "models/lora" / label, d / ".work/lora", cfg, repo_root=d)
    elif stage == "generate_chunk":
        from dermsynth.diffusion.sample import GenerateConfig, generate

        cfg = GenerateConfig(n_per_class=8, batch_size=8, samplers=("euler",), steps_min=20, steps_max=20, negative_prompt="")
        generate(cfg, "models/base", {c: f"models/lora/{c}" for c in cfg.classes}, d / "synthetic", d / ".work", repo_root=d)
    elif stage == "classifier_epoch":
        from dermsynth.audit.features import build_feature_model

        m = pd.read_csv(d / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
        build_feature_model(m, d / "models/features", "mobilenetv2_100", size, epochs=1, seed=0, root=d)
    elif stage == "audit":
        from dermsynth.audit.run import AuditConfig, audit

        m = pd.read_csv(d / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
        syn = pd.read_csv(d / "synthetic/metadata.csv", keep_default_na=False)
        audit(m, syn, d / "models/features", AuditConfig(workers=workers), root=d)
    return {"seconds": round(time.perf_counter() - t, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)}


def run_all(fraction: float, size: int, workers: int, stages: list[str]) -> tuple[int, dict]:
    from dermsynth.demo.layouts import write_demo

    d = Path(tempfile.mkdtemp(prefix=f"scale-{fraction}-"))
    write_demo(d / "raw", seed=0, defects=False, scale=fraction)
    out = {}
    for stage in stages:
        p = subprocess.run([sys.executable, __file__, "--child", stage, "--dir", str(d), "--size", str(size),
                            "--workers", str(workers)], capture_output=True, text=True, cwd=d)
        if p.returncode != 0:
            raise RuntimeError(f"{stage} failed:\n{p.stderr[-3000:]}")
        out[stage] = json.loads(p.stdout.strip().splitlines()[-1])
    n = len(pd.read_csv(d / "interim.csv"))
    return n, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=0.002)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--stages", default=",".join(STAGES), help="the first k stages (each needs the ones before)")
    ap.add_argument("--child", default="")
    ap.add_argument("--dir", default="")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, Path(a.dir), a.size, a.workers)))
        return
    stages = a.stages.split(",")
    if stages != STAGES[: len(stages)]:
        ap.error(f"--stages must be the first stages of {STAGES}, in order")
    n1, r1 = run_all(a.fraction, a.size, a.workers, stages)
    n4, r4 = run_all(4 * a.fraction, a.size, a.workers, stages)
    print(f"N = {n1} images, 4N = {n4} images (scale profile F = {a.fraction} and {4 * a.fraction}), output {a.size} px")
    print(f"{'stage':18s} {'s (N)':>8s} {'s (4N)':>8s} {'x':>6s} {'GB (N)':>7s} {'GB (4N)':>7s} {'x':>6s}  "
          + "  ".join(f"extrapolated to {k}: s, GB" for k in FULL))
    grow = math.log(n4 / n1)
    for s in stages:
        t1, t4, m1, m4 = r1[s]["seconds"], r4[s]["seconds"], r1[s]["peak_rss_gb"], r4[s]["peak_rss_gb"]
        bt, bm = math.log(max(t4, 1e-3) / max(t1, 1e-3)) / grow, math.log(m4 / m1) / grow
        ext = "  ".join(f"{t4 * (m / n4) ** max(bt, 0):>10.0f} s {m4 * (m / n4) ** max(bm, 0):>6.2f} GB" for m in FULL.values())
        print(f"{s:18s} {t1:8.1f} {t4:8.1f} {t4 / max(t1, 1e-3):6.2f} {m1:7.2f} {m4:7.2f} {m4 / m1:6.2f}  {ext}")


if __name__ == "__main__":
    main()
