"""Does the diffusion model copy its training images? Nearest real training image of every
synthetic one, in embedding space (cosine) and in perceptual-hash space (Hamming bits).

Raw classifier features are dominated by a shared component (every pair has cosine ~0.999), so
they are standardised with the training images' statistics first. No absolute cosine means
"copy" in every feature space; the threshold is calibrated on real images the model never saw:
held-out (val/test) images are other lesions of other patients (the splits are grouped), so a
synthetic image closer to a training image than almost all of them are is a near-copy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors


class _Standardise:
    def __init__(self, ref: np.ndarray):
        self.mu, self.sd = ref.mean(0), ref.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) / self.sd


def _nn_cosine(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = _Standardise(ref)
    dist, idx = NearestNeighbors(n_neighbors=1, metric="cosine").fit(z(ref)).kneighbors(z(query))
    return idx[:, 0], 1.0 - dist[:, 0]


def heldout_threshold(heldout_emb: np.ndarray, train_emb: np.ndarray, quantile: float) -> float:
    """Cosine above which only `quantile` of held-out real images lie (to their nearest training image)."""
    _, sim = _nn_cosine(heldout_emb, train_emb)
    return float(np.quantile(sim, 1.0 - quantile))


def nearest_real(syn_emb: np.ndarray, real_emb: np.ndarray, syn_hash: np.ndarray, real_hash: np.ndarray) -> pd.DataFrame:
    """Per synthetic image: index and cosine similarity of the nearest real (embedding), and
    index and bit distance of the nearest real (perceptual hash)."""
    idx, sim = _nn_cosine(syn_emb, real_emb)
    ham_idx = np.empty(len(syn_hash), int)
    ham = np.empty(len(syn_hash), int)
    for s in range(0, len(syn_hash), 1024):  # XOR + popcount against every real hash, in chunks
        d = np.bitwise_count(syn_hash[s : s + 1024, None] ^ real_hash[None, :])
        ham_idx[s : s + 1024] = d.argmin(1)
        ham[s : s + 1024] = d.min(1)
    return pd.DataFrame({"nn_embedding": idx, "cosine_similarity": sim, "nn_phash": ham_idx, "phash_distance": ham})


def flag_near_copies(nn: pd.DataFrame, cosine_min: float, phash_max: int) -> np.ndarray:
    """Near-copies: as close as a re-photographed image in either space."""
    return ((nn["cosine_similarity"] >= cosine_min) | (nn["phash_distance"] <= phash_max)).to_numpy()
