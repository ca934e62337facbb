"""Image grids for people: validation samples of a LoRA, real vs synthetic side by side."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from dermsynth.diffusion.base import load_pipeline


def grid(rows: list[list[np.ndarray]], labels: list[str] | None = None, scale: int = 2) -> Image.Image:
    """Rows of equally sized RGB arrays as one image, with an optional label per row."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    pad = 110 if labels else 0
    canvas = Image.new("RGB", (pad + ncol * w * scale, len(rows) * h * scale), "white")
    draw = ImageDraw.Draw(canvas)
    for i, r in enumerate(rows):
        for j, a in enumerate(r):
            canvas.paste(Image.fromarray(a).resize((w * scale, h * scale), Image.NEAREST), (pad + j * w * scale, i * h * scale))
        if labels:
            draw.text((4, i * h * scale + h * scale // 2 - 6), labels[i], fill="black")
    return canvas


@torch.inference_mode()
def lora_samples_grid(base_dir: str | Path, lora_dir: str | Path, prompt: str, n: int, seed: int, out: str | Path) -> None:
    """The base model and the base + LoRA, same seeds: what the LoRA changed."""
    pipe = load_pipeline(base_dir)
    pipe.set_progress_bar_config(disable=True)
    gens = lambda: [torch.Generator().manual_seed(seed + i) for i in range(n)]  # noqa: E731
    kw = dict(num_inference_steps=25, guidance_scale=7.0, output_type="np")
    before = pipe([prompt] * n, generator=gens(), **kw).images
    pipe.load_lora_weights(str(lora_dir))
    after = pipe([prompt] * n, generator=gens(), **kw).images
    to8 = lambda a: (a * 255).round().clip(0, 255).astype(np.uint8)  # noqa: E731
    grid([[to8(a) for a in before], [to8(a) for a in after]], ["base", "base + LoRA"]).save(out)


def real_vs_synthetic(manifest: pd.DataFrame, synthetic: pd.DataFrame, n: int, seed: int, root: Path = Path(".")) -> Image.Image:
    """One row of real training images and one of synthetic images per class (and per sampler)."""
    rows, labels = [], []
    load = lambda p: np.asarray(Image.open(root / p).convert("RGB"))  # noqa: E731
    for label in sorted(synthetic.label.unique()):
        real = manifest[(manifest.split == "train") & (manifest.label == label)]
        rows.append([load(p) for p in real.sample(min(n, len(real)), random_state=seed).path])
        labels.append(f"real {label}")
        samplers = synthetic.sampler.fillna("").astype(str)  # empty: an imported image whose release does not say
        for sampler in sorted(samplers.unique()):
            syn = synthetic[(synthetic.label == label) & (samplers == sampler)]
            if len(syn) == 0:
                continue
            rows.append([load(p) for p in syn.sample(min(n, len(syn)), random_state=seed).path])
            labels.append(f"syn {label} {sampler}".rstrip())
    return grid(rows, labels)
