"""Does the diffusion model copy its training images? Nearest real training image of every
synthetic one, in the audit's fixed feature space (Euclidean, standardised features) and in
perceptual-hash space (Hamming bits).

No absolute distance means "copy" in every feature space, so the threshold is calibrated on real
images the model never saw: held-out (val/test) images are other lesions of other patients (the
splits are grouped), so a synthetic image closer to a training image than all but `quantile` of
them are (1st percentile by default) is a near-copy. Distances, not cosines: features whose
pairwise cosines are all ~0.9999 leave a cosine threshold no resolution.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler


def _nn_distance(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest reference point, features standardised on `ref`."""
    z = StandardScaler().fit(ref)
    dist, idx = NearestNeighbors(n_neighbors=1).fit(z.transform(ref)).kneighbors(z.transform(query))
    return idx[:, 0], dist[:, 0]


def heldout_threshold(heldout_emb: np.ndarray, train_emb: np.ndarray, quantile: float) -> float:
    """Distance below which only `quantile` of held-out real images lie (to their nearest training image)."""
    _, dist = _nn_distance(heldout_emb, train_emb)
    return float(np.quantile(dist, quantile))


def nearest_hamming(query: np.ndarray, ref: np.ndarray, max_cells: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Index of and bit distance to the nearest reference hash; blocks of at most `max_cells` pairs."""
    idx, dist = np.empty(len(query), int), np.empty(len(query), int)
    step = max(1, max_cells // max(len(ref), 1))
    for s in range(0, len(query), step):
        d = np.bitwise_count(query[s : s + step, None] ^ ref[None, :])
        idx[s : s + step], dist[s : s + step] = d.argmin(1), d.min(1)
    return idx, dist


def nearest_real(syn_emb: np.ndarray, real_emb: np.ndarray, syn_hash: np.ndarray, real_hash: np.ndarray) -> pd.DataFrame:
    """Per synthetic image: index of and distance to the nearest real (embedding), and index of and
    bit distance to the nearest real (perceptual hash)."""
    idx, dist = _nn_distance(syn_emb, real_emb)
    ham_idx, ham = nearest_hamming(syn_hash, real_hash)
    return pd.DataFrame({"nn_embedding": idx, "distance": dist, "nn_phash": ham_idx, "phash_distance": ham})


def flag_near_copies(nn: pd.DataFrame, distance_max: float, phash_max: int) -> np.ndarray:
    """Near-copies: as close as a re-photographed image in either space."""
    return ((nn["distance"] <= distance_max) | (nn["phash_distance"] <= phash_max)).to_numpy()
