"""Fidelity of the synthetic set: FID and KID (torchmetrics, with the audit's feature extractor
instead of Inception) and k-NN precision / recall (Kynkaanniemi et al., 2019)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


def fid_kid(extractor: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, batch: int = 256,
            kid_subset: int = 100) -> dict[str, float]:
    """FID and KID (mean, std) between two uint8 image tensors in `extractor`'s feature space."""
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=True)
    kid = KernelInceptionDistance(feature=extractor, subset_size=min(kid_subset, len(real), len(fake)), subsets=50)
    for t, is_real in ((real, True), (fake, False)):
        for i in range(0, len(t), batch):
            fid.update(t[i : i + batch], real=is_real)
            kid.update(t[i : i + batch], real=is_real)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Share of fake samples inside the real k-NN manifold (precision) and vice versa (recall)."""
    def radii(x: np.ndarray) -> np.ndarray:
        d, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        return d[:, -1]  # distance to the k-th neighbour other than itself

    def coverage(ref: np.ndarray, r: np.ndarray, q: np.ndarray) -> float:
        d = np.linalg.norm(q[:, None, :] - ref[None, :, :], axis=2) if len(q) * len(ref) < 2e7 else None
        if d is None:  # large sets: chunked
            inside = [(np.linalg.norm(q[i : i + 512, None, :] - ref[None], axis=2) <= r[None]).any(1)
                      for i in range(0, len(q), 512)]
            return float(np.concatenate(inside).mean())
        return float((d <= r[None, :]).any(1).mean())

    return {"precision": coverage(real, radii(real), fake), "recall": coverage(fake, radii(fake), real)}
