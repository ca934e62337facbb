"""SD1.5 at full size on the CPU: the proof that shapes, dtypes and memory hold at the paper's size.

    python benchmarks/sd15_cpu.py [--size 512] [--steps 2] [--gen-steps 20] [--out /tmp/sd15]

Builds Stable Diffusion 1.5's architecture with random weights (860M-parameter UNet, its VAE, a
CLIP ViT-L/14 text encoder; nothing is downloaded), saves it as a diffusers directory, then runs
the project's own code paths on it: DreamBooth-LoRA training (latent cache, gradient
checkpointing, batch 1) for a few steps at `--size` px, and generation of two images (one per
class, Euler, CFG 7). Prints seconds per step and the peak resident memory after each phase.
Random weights draw noise, not lesions: this measures cost, not quality.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2, help="LoRA training steps")
    ap.add_argument("--gen-steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=2, help="instance images for the LoRA")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
    from dermsynth.diffusion.sample import GenerateConfig, generate
    from dermsynth.diffusion.sd15 import build_sd15_random

    root = Path(a.out or tempfile.mkdtemp(prefix="sd15-cpu-"))
    report = {"size": a.size}
    t = time.perf_counter()
    pipe = build_sd15_random(a.size)
    report["unet_parameters_M"] = round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 1)
    pipe.save_pretrained(root / "models/base")
    del pipe
    report["build_and_save_s"] = round(time.perf_counter() - t, 1)
    report["peak_rss_gb_after_build"] = round(peak_gb(), 2)

    rng = np.random.default_rng(0)
    (root / "images").mkdir(exist_ok=True)
    paths = []
    for i in range(a.images):
        Image.fromarray(rng.integers(0, 255, (a.size, a.size, 3), dtype=np.uint8)).save(root / f"images/{i}.png")
        paths.append(f"images/{i}.png")
    def lora(steps: int, lr: float, out: str) -> tuple[float, object]:
        cfg = LoraTrainConfig(max_steps=steps, batch_size=1, gradient_checkpointing=True, checkpoint_every=steps,
                              learning_rate=lr, rank=8, alpha=8, validation_images=0)
        t = time.perf_counter()
        res = train_lora(root / "models/base", paths, "malignant", root / out, root / ".work/lora", cfg, repo_root=root)
        return time.perf_counter() - t, res

    # three runs share one latent cache: (1 step + encoding), (1 step), (1 + steps): the difference of
    # the last two is the cost of `steps` training steps alone
    t_first, _ = lora(1, 1e-4, "models/lora/first")
    t_one, _ = lora(1, 2e-4, "models/lora/one")
    t_more, res = lora(1 + a.steps, 1e-4, "models/lora/malignant")
    shutil.copytree(root / "models/lora/malignant", root / "models/lora/benign", dirs_exist_ok=True)
    report |= {"lora_s_per_step (batch 1, gradient checkpointing)": round((t_more - t_one) / a.steps, 1),
               "lora_latent_encoding_s": round(t_first - t_one, 1), "lora_load_s": round(t_one - (t_more - t_one) / a.steps, 1),
               "lora_final_loss": res.losses[-1], "peak_rss_gb_after_lora": round(peak_gb(), 2)}

    gcfg = GenerateConfig(n_per_class=1, batch_size=1, steps_min=a.gen_steps, steps_max=a.gen_steps, samplers=("euler",),
                          negative_prompt="blurry, lowres", threads=a.threads)
    t = time.perf_counter()
    summary = generate(gcfg, "models/base", {c: f"models/lora/{c}" for c in gcfg.classes}, root / "data/synthetic",
                       root / ".work", repo_root=root)
    gen_s = time.perf_counter() - t
    img = Image.open(root / "data/synthetic/images/benign/syn_benign_00000.png")
    report |= {"generated": summary["images"], "generated_size": list(img.size),
               "generation_s_per_image (incl. load)": round(gen_s / summary["images"], 1),
               "generation_s_per_denoising_step": round(gen_s / summary["images"] / a.gen_steps, 2),
               "peak_rss_gb_after_generation": round(peak_gb(), 2)}
    print(json.dumps(report, indent=2))
    if not a.out:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
