"""The latent space's ceiling: how much class information survives the base model's VAE.

Every image a latent diffusion model draws passes through its VAE's decoder. The audit scores the VAE's
reconstructions of real training images like a synthetic set (dermsynth.audit.tstr): the same small
classifier, trained on the reconstructions, tested on the real test split. A ceiling far below `trtr_auc`
says the VAE blurs away what the embedder sees of the class (the demo's first tiny model, 8x8 latents at
64 px: 0.45 against a TRTR of 0.74, and its synthetic images carried no class either).

It is a diagnosis, not a bound: the posterior means of real images decode to averages, blurrier than the
latents a UNet draws, so a generator can score above it (the demo's 16x16-latent model: ceiling 0.48,
train-on-synthetic 0.84, TRTR 0.91).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dermsynth.audit.features import BackboneFeatures, embed
from dermsynth.audit.tstr import POSITIVE, TEST_SPLIT, TRAIN_SPLIT, fit_and_score

METHOD = ("the classification accuracy score's classifier trained on the base model's VAE reconstructions "
          "(posterior mean, decoded) of real training images instead of synthetic ones, tested on the real test "
          "split: how much of the class the VAE's reconstructions keep; a diagnosis of the VAE, not a bound on "
          "tstr_auc (a UNet's latents can decode sharper than posterior means)")


def load_vae(base_dir: str | Path):
    """The VAE of a base model directory (models/base), from safetensors."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(Path(base_dir) / "vae", use_safetensors=True).eval()


@torch.inference_mode()
def reconstruct(vae, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """uint8 (N, 3, H, W) images through encode (posterior mean) and decode, back as uint8."""
    out = []
    for i in range(0, len(images), batch):  # the caller's progress bar (features.embed) counts batches
        x = images[i : i + batch].float() / 127.5 - 1.0
        rec = vae.decode(vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mean).sample
        out.append(((rec.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(out) if out else images[:0]


def train_rows(manifest: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """The real training rows to reconstruct: all, or a seeded sample of `max_images` stratified by label."""
    train = manifest[manifest.split == TRAIN_SPLIT]
    if max_images <= 0 or len(train) <= max_images:
        return train
    share = max_images / len(train)
    return pd.concat([g.sample(max(1, round(len(g) * share)), random_state=seed)
                      for _, g in train.groupby("label", sort=True)])


def reconstruction_ceiling(extractor: BackboneFeatures, vae, manifest: pd.DataFrame, test_features: np.ndarray,
                           test_labels: np.ndarray, max_images: int, seed: int, root: str | Path = ".",
                           positive: str = POSITIVE) -> dict:
    """`ceiling_auc` / `ceiling_balanced_accuracy` (null with `ceiling_reason` when a set lacks a class), the
    number of reconstructed images and the method, for fidelity.json's classification accuracy score."""
    rows = train_rows(manifest, max_images, seed)
    feats = embed(extractor, list(rows.path), root, desc="VAE reconstructions",
                  transform=lambda images: reconstruct(vae, images))
    auc, bacc, reason = fit_and_score(feats, rows.label.to_numpy(), test_features, test_labels, seed, positive,
                                      "reconstructed", f"real {TEST_SPLIT}")
    out = {"ceiling_auc": auc, "ceiling_balanced_accuracy": bacc, "n_reconstructed": int(len(rows)),
           "ceiling_method": METHOD}
    return out | ({"ceiling_reason": reason} if reason else {})
