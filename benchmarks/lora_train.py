"""DreamBooth-LoRA training throughput (images/s), batch 1 vs a larger batch, side by side.

    python benchmarks/lora_train.py                                   # CPU-sized: SD1.5 architecture at 128 px
    python benchmarks/lora_train.py --size 512 --batch 8 --steps 30   # GPU, paper resolution
    python benchmarks/lora_train.py --arch tiny --size 64 --batch 16  # the demo model

Prints the projected time of the paper's schedule (120 epochs x 2800 images) at the measured rate.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dermsynth.diffusion.lora import LoraTrainConfig, train_lora


def _base(arch: str, size: int, root: Path) -> Path:
    if arch == "sd15":
        from dermsynth.diffusion.sd15 import build_sd15_random

        pipe = build_sd15_random(size)
    else:
        from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline

        pipe = build_tiny_pipeline(TinyConfig(image_size=size))
    pipe.save_pretrained(root / "base")
    return root / "base"


def _images(root: Path, size: int, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    paths = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        paths.append(f"img/{i}.png")
    return paths


def rate(base: Path, paths: list[str], root: Path, batch: int, steps: int, grad_ckpt: bool) -> float:
    cfg = LoraTrainConfig(max_steps=steps, batch_size=batch, checkpoint_every=10**9, learning_rate=1e-4,
                          gradient_checkpointing=grad_ckpt, flip_augment=False)
    warm = LoraTrainConfig(**{**cfg.__dict__, "max_steps": 1})
    train_lora(base, paths, "bench", root / f"w{batch}", root / f"ww{batch}", warm, repo_root=root)  # load + warm-up
    t = time.perf_counter()
    train_lora(base, paths, "bench", root / f"o{batch}", root / f"wo{batch}", cfg, repo_root=root)
    return steps * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["sd15", "tiny"], default="sd15")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    base = _base(args.arch, args.size, root)
    paths = _images(root, args.size, max(args.batch * 2, 8))
    r1 = rate(base, paths, root, 1, args.steps, args.gradient_checkpointing)
    rb = rate(base, paths, root, args.batch, args.steps, args.gradient_checkpointing)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\nLoRA training, {args.arch} architecture at {args.size}px on {dev} (includes the per-step overhead):")
    print(f"  batch 1            : {r1:8.2f} images/s")
    print(f"  batch {args.batch:<13d}: {rb:8.2f} images/s")
    print(f"  speed-up           : {rb / r1:.2f}x")
    print(f"  paper schedule (120 epochs x 2800 images) at batch {args.batch}: {120 * 2800 / rb / 3600:.1f} h")


if __name__ == "__main__":
    main()
