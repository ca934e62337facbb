"""Prepared images as training tensors for the diffusion models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image


def load_images(paths: list[str] | pd.Series, root: str | Path = ".", size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) float tensor in [-1, 1], the range SD's VAE works in."""
    arrs = []
    for p in paths:
        im = Image.open(Path(root) / p).convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        arrs.append(np.asarray(im, dtype=np.float32))
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
    return x / 127.5 - 1.0


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree rotations: dermoscopy has no canonical orientation."""
    flip_h = torch.rand(len(x), generator=g) < 0.5
    flip_v = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    if x.shape[2] == x.shape[3] and torch.rand(1, generator=g).item() < 0.5:
        x = x.transpose(2, 3)
    return x


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The indices of training step `step`: a fresh seeded permutation per epoch.

    A pure function of (seed, step), so training resumed at any step sees exactly the batches an
    uninterrupted run would have seen, with no data-loader state to save.
    """
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    if n < batch_size:
        return perm
    return perm[k * batch_size : (k + 1) * batch_size]


def step_generator(seed: int, step: int) -> torch.Generator:
    """Noise, timesteps and augmentation of one step, also a pure function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


def instance_images(manifest: pd.DataFrame, label: str, max_images: int, seed: int) -> list[str]:
    """The training images one class's LoRA learns from (`lora.max_images_per_class`): every one (0), or at
    most `max_images` of them as whole groups (the split's lesion/patient `group`) in a seeded order, as
    Derm-T2IM trained on 1,400 per class. Whole groups, so that the cap buys lesions, not more photographs
    of the same ones; in manifest order, so the same draw gives the same files and latent cache."""
    rows = manifest[(manifest["split"] == "train") & (manifest["label"] == label)]
    if max_images == 0 or len(rows) <= max_images:
        return rows["path"].tolist()
    groups = rows["group"].astype(str) if "group" in rows else rows["image_id"].astype(str)
    sizes = groups.value_counts()
    order = np.random.default_rng([seed, 0x10AA]).permutation(sorted(sizes.index))
    chosen, total = set(), 0
    for g in order:  # a group that no longer fits is passed over: a smaller one may still
        if total + sizes[g] <= max_images:
            chosen.add(g)
            total += sizes[g]
    return rows.loc[groups.isin(chosen), "path"].tolist()
