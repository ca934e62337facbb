"""Generation throughput: a naive diffusers batch-1 loop vs the project's generation path, side by side.

    python benchmarks/generation.py                       # CPU-sized: SD1.5 architecture at 128 px, 5 steps
    python benchmarks/generation.py --size 512 --steps 25 --images 64 --batch 32 --compile   # GPU (paper settings)
    python benchmarks/generation.py --base models/base --size 64 --steps 23 --images 256 --batch 128  # the demo model

SD1.5 architecture with random weights unless --base points at a local model (same cost per step).
The naive loop is what a script written from the diffusers docs does: fp32, one image at a time.
The project path: fp16 on CUDA, batched chunks with one generator per image, channels_last,
SDPA attention (diffusers' default on torch 2), optional torch.compile.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from dermsynth.diffusion.sample import GenerateConfig, make_scheduler, render_chunk


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _pipe(base: str, size: int, dtype: torch.dtype):
    if base:
        from dermsynth.diffusion.base import load_pipeline

        pipe = load_pipeline(base, dtype=dtype)
    else:
        from dermsynth.diffusion.sd15 import build_sd15_random

        pipe = build_sd15_random(size, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda" if torch.cuda.is_available() else "cpu")


def naive(args) -> float:
    pipe = _pipe(args.base, args.size, torch.float32)
    pipe.scheduler = make_scheduler("euler", dict(pipe.scheduler.config))
    kw = dict(num_inference_steps=args.steps, guidance_scale=7.0, height=args.size, width=args.size, output_type="np")
    pipe("a dermoscopic image of sks malignant lesion", generator=torch.Generator().manual_seed(0), **kw)  # warm-up
    _sync()
    t = time.perf_counter()
    for i in range(args.naive_images):
        pipe("a dermoscopic image of sks malignant lesion", generator=torch.Generator().manual_seed(i), **kw)
    _sync()
    return args.naive_images / (time.perf_counter() - t)


def project(args) -> float:
    cfg = GenerateConfig(batch_size=args.batch, compile=args.compile, threads=0)
    dtype = torch.float16 if torch.cuda.is_available() else torch.float32
    pipe = _pipe(args.base, args.size, dtype)
    if cfg.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if cfg.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs")
    base = dict(pipe.scheduler.config)
    rows = lambda n, s0: pd.DataFrame({"prompt": ["a dermoscopic image of sks malignant lesion"] * n,  # noqa: E731
                                       "negative_prompt": [cfg.negative_prompt] * n, "sampler": "euler",
                                       "steps": args.steps, "cfg": 7.0, "seed": range(s0, s0 + n)})
    render_chunk(pipe, rows(args.batch, 10_000), base)  # warm-up (and compilation)
    _sync()
    t = time.perf_counter()
    done = 0
    while done < args.images:
        n = min(args.batch, args.images - done)
        render_chunk(pipe, rows(n, done), base)
        done += n
    _sync()
    return args.images / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="", help="local model directory (default: SD1.5 architecture, random weights)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--naive-images", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(torch.get_num_threads())
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    a = naive(args)
    b = project(args)
    print(f"\ngeneration, {'local model ' + args.base if args.base else 'SD1.5 architecture'}, {args.size}px, "
          f"{args.steps} steps, CFG 7, on {dev}:")
    print(f"  naive diffusers loop (fp32, batch 1) : {a:8.3f} images/s")
    print(f"  dermsynth path (batch {args.batch}{', compiled' if args.compile else ''})  : {b:8.3f} images/s")
    print(f"  speed-up                             : {b / a:.2f}x")


if __name__ == "__main__":
    main()
