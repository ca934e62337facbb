"""VAE latents of the LoRA training images, encoded once and kept on disk.

Training reads the posterior mean and std of each image (and of its flips: dermoscopy has no
canonical orientation) from memory-mapped arrays, so memory is bounded by the batch, not by the
number of images (HAM10000's benign training images as float32 pixels would take ~85 GB), and
the VAE leaves the training step. The cache lives in `work_root/latents/<key>`, the key a hash
of the base model's files, the image files (names, sizes, mtimes), the image size, the flips and
the dtype: the same data re-uses it, any change re-encodes.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dermsynth.diffusion.data import load_images
from dermsynth.files import fingerprint

FLIPS = ("none", "h", "v", "hv")


def _flip(x: torch.Tensor, how: str) -> torch.Tensor:
    return {"none": x, "h": x.flip(3), "v": x.flip(2), "hv": x.flip(2).flip(3)}[how]


def _file_stats(paths: list[str], root: Path) -> list:
    return [(p, (root / p).stat().st_size, int((root / p).stat().st_mtime)) for p in paths]


@dataclass
class LatentCache:
    """Row k * n_images + i holds flip k of image i (k = 0: the image itself)."""

    mean: np.ndarray
    std: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.mean)

    def sample(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Latents drawn from the posteriors of rows `idx` (only those rows are read from disk)."""
        rows = idx.numpy()
        mean, std = torch.from_numpy(self.mean[rows].astype(np.float32)), torch.from_numpy(self.std[rows].astype(np.float32))
        return mean + std * torch.randn(mean.shape, generator=g)


def cache_key(base_fingerprint: object, paths: list[str], root: Path, size: int, flips: bool, dtype: torch.dtype) -> str:
    return fingerprint(base_fingerprint, _file_stats(paths, root), size, flips, str(dtype))


@torch.no_grad()
def encode_latents(vae, paths: list[str], root: str | Path, size: int, cache_dir: Path, flips: bool,
                   dtype: torch.dtype, batch_size: int = 16, desc: str = "encode latents") -> LatentCache:
    """Encode (or reopen) the cache in `cache_dir`; images stream through in batches."""
    root, cache_dir = Path(root), Path(cache_dir)
    done = cache_dir / "complete.json"
    if done.is_file():
        return open_cache(cache_dir)
    tmp = cache_dir.with_name(cache_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ways = FLIPS if flips else FLIPS[:1]
    n = len(paths)
    latent_side = size // (2 ** (len(vae.config.block_out_channels) - 1))
    shape = (n * len(ways), vae.config.latent_channels, latent_side, latent_side)
    mean = np.lib.format.open_memmap(tmp / "mean.npy", mode="w+", dtype=np.float32, shape=shape)
    std = np.lib.format.open_memmap(tmp / "std.npy", mode="w+", dtype=np.float32, shape=shape)
    for s in tqdm(range(0, n, batch_size), desc=desc, mininterval=2.0):
        images = load_images(paths[s : s + batch_size], root, size=size)
        for k, how in enumerate(ways):
            d = vae.encode(_flip(images, how).to(vae.device, dtype)).latent_dist
            mean[k * n + s : k * n + s + len(images)] = d.mean.float().cpu().numpy()
            std[k * n + s : k * n + s + len(images)] = d.std.float().cpu().numpy()
    mean.flush(), std.flush()
    del mean, std
    (tmp / "complete.json").write_text(json.dumps({"images": n, "flips": list(ways), "shape": list(shape)}))
    shutil.rmtree(cache_dir, ignore_errors=True)
    tmp.rename(cache_dir)  # complete or absent: a killed encode starts again, never reads half a cache
    return open_cache(cache_dir)


def open_cache(cache_dir: Path) -> LatentCache:
    return LatentCache(np.load(cache_dir / "mean.npy", mmap_mode="r"), np.load(cache_dir / "std.npy", mmap_mode="r"),
                       cache_dir)
