"""The latent space's ceiling: how much class information survives the base model's VAE.

Every image a latent diffusion model draws passes through its VAE's decoder, so a generator cannot
carry more of the class than the VAE's reconstructions of real images do. The audit scores those
reconstructions like a synthetic set (dermsynth.audit.tstr): the same small classifier, trained on the
reconstructions of real training images, tested on the real test split. A `tstr_auc` far below this
ceiling points at the UNet, the LoRAs or the prompts; a ceiling far below `trtr_auc` points at the VAE
(on the demo's first tiny model, 8x8 latents at 64 px, the ceiling was 0.45 against a TRTR of 0.74).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dermsynth.audit.features import BackboneFeatures, load_uint8
from dermsynth.audit.tstr import POSITIVE, TEST_SPLIT, TRAIN_SPLIT, fit_and_score

METHOD = ("the classification accuracy score's classifier trained on the base model's VAE reconstructions "
          "(posterior mean, decoded) of real training images instead of synthetic ones, tested on the real test "
          "split: the most of the class a generator drawing through this VAE can carry")


def load_vae(base_dir: str | Path):
    """The VAE of a base model directory (models/base), from safetensors."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(Path(base_dir) / "vae", use_safetensors=True).eval()


@torch.inference_mode()
def reconstruct(vae, images: torch.Tensor, batch: int = 16, desc: str = "VAE reconstructions") -> torch.Tensor:
    """uint8 (N, 3, H, W) images through encode (posterior mean) and decode, back as uint8."""
    out = []
    for i in tqdm(range(0, len(images), batch), desc=desc, mininterval=2.0):
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
    rec = reconstruct(vae, load_uint8(list(rows.path), root))
    feats = np.concatenate([extractor(rec[i : i + 256]).numpy() for i in range(0, len(rec), 256)]) if len(rec) else \
        np.zeros((0, 1), np.float32)
    auc, bacc, reason = fit_and_score(feats, rows.label.to_numpy(), test_features, test_labels, seed, positive,
                                      "reconstructed", f"real {TEST_SPLIT}")
    out = {"ceiling_auc": auc, "ceiling_balanced_accuracy": bacc, "n_reconstructed": int(len(rows)),
           "ceiling_method": METHOD}
    return out | ({"ceiling_reason": reason} if reason else {})
