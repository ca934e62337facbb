"""Fidelity of the synthetic set, from features in the audit's fixed feature space.

- FID and KID through torchmetrics, fed with precomputed features (a pass-through "extractor").
  FID needs a full-rank covariance: with fewer samples than about twice the dimension it is an
  artefact of the sample size, so then both sets are projected onto the real set's first
  n/2 principal components, and the report says so. KID is seeded; its subsets (count, size, and
  the size asked for where a small class forced a smaller one) are reported beside it.
- Precision, recall, density and coverage (Naeem et al., 2020) with k-NN balls, computed in
  blocks (sklearn's pairwise_distances_chunked), so memory is bounded by the block, not n x m.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

MIN_SAMPLES_PER_DIM = 2  # FID in full dimension only with at least this many samples per dimension


class PassThrough(torch.nn.Module):
    """Features in, features out: lets torchmetrics' FID/KID take precomputed embeddings."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


def fid_space(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Both sets in a space where the FID's covariances are estimable, and a note saying which."""
    n, dim = min(len(real), len(fake)), real.shape[1]
    if n >= MIN_SAMPLES_PER_DIM * dim:
        return real, fake, f"full {dim}-d feature space"
    k = max(min(n // 2, dim), 1)
    pca = PCA(n_components=k, random_state=0).fit(real)
    note = (f"{k}-d PCA of the real features (n={n} < {MIN_SAMPLES_PER_DIM} x {dim} dimensions: a full-dimension "
            f"FID would rest on rank-deficient covariances)")
    return pca.transform(real), pca.transform(fake), note


def kid_settings(n_real: int, n_fake: int, subsets: int = 50, subset_size: int = 100) -> dict:
    """The KID subsets actually drawn: `subset_size` images of each set per subset, unless a set is smaller
    (then its size, at least 2), said in the output with the size asked for."""
    used = max(min(subset_size, n_real, n_fake), 2)
    out: dict = {"subsets": subsets, "subset_size": used}
    if used < subset_size:
        out["subset_size_reduced_from"] = subset_size
        out["note"] = (f"audit.kid_subset_size={subset_size} asked for more images than the smaller set holds "
                       f"({min(n_real, n_fake)} of {n_real} real, {n_fake} synthetic): each of the {subsets} "
                       f"subsets drew {used} of each")
    return out


def fid_kid(real: np.ndarray, fake: np.ndarray, seed: int = 0, kid_subset_size: int = 100, kid_subsets: int = 50) -> dict:
    """FID (in `fid_space`) and seeded KID (full feature space) between two feature arrays, with the KID
    subsets used (`kid_settings`)."""
    r, f, note = fid_space(real, fake)
    fid = FrechetInceptionDistance(feature=PassThrough(r.shape[1]), reset_real_features=True)
    fid.update(torch.from_numpy(np.ascontiguousarray(r)), real=True)
    fid.update(torch.from_numpy(np.ascontiguousarray(f)), real=False)
    settings = kid_settings(len(real), len(fake), kid_subsets, kid_subset_size)
    kid = KernelInceptionDistance(feature=PassThrough(real.shape[1]), subsets=settings["subsets"],
                                  subset_size=settings["subset_size"])
    kid.update(torch.from_numpy(np.ascontiguousarray(real)), real=True)
    kid.update(torch.from_numpy(np.ascontiguousarray(fake)), real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from torch's global RNG
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "fid_space": note, "kid": float(kid_mean), "kid_std": float(kid_std),
            "kid_settings": settings}


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point to its k-th nearest neighbour other than itself."""
    d, _ = NearestNeighbors(n_neighbors=min(k + 1, len(x))).fit(x).kneighbors(x)
    return d[:, -1]


def _inside_counts(query: np.ndarray, ref: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each query point, in how many of the reference points' balls it lies (blockwise)."""
    counts = []
    for block in pairwise_distances_chunked(query, ref, working_memory=64):
        counts.append((block <= radii[None, :]).sum(1))
    return np.concatenate(counts) if counts else np.zeros(0, int)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020)."""
    if len(real) <= k or len(fake) <= k:
        nan = float("nan")
        return {"precision": nan, "recall": nan, "density": nan, "coverage": nan}
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    fake_in_real = _inside_counts(fake, real, r_real)
    nn_fake_dist, _ = NearestNeighbors(n_neighbors=1).fit(fake).kneighbors(real)
    return {
        "precision": float((fake_in_real > 0).mean()),
        "recall": float((_inside_counts(real, fake, r_fake) > 0).mean()),
        "density": float(fake_in_real.sum() / (k * len(fake))),
        "coverage": float((nn_fake_dist[:, 0] <= r_real).mean()),
    }
