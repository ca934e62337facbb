"""Automatic filtering of weak synthetic images before the classifiers draw from them.

Derm-T2IM discarded "noisy" synthetic samples by hand; this scores every image instead, in the
audit's fixed feature space (no ratio or classifier seed reaches it):

- `blank`: flat or black (quality.min_pixel_std / min_pixel_mean), and `near_copy`: the audit's
  memorisation flag. Both are dropped by every policy but `none`.
- `knn_ratio` (realism): distance to the k-th nearest real training image over the median such
  distance among real training images; about 1 inside the real manifold, larger off it.
- `label_prob`: probability of the intended label under a logistic regression fitted on the real
  training images' embeddings only (a classifier trained on real images).

`policy`: none (keep all) | flagged (drop blank and near-copies) | realism | label | combined (drop
flagged, then keep the best `keep_fraction` of each class by realism, label probability or the mean
of both ranks). Kept per class, so filtering never changes the synthetic class mix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dermsynth.contracts import FILTER_COLUMNS
from dermsynth.errors import UserValueError
from dermsynth.params import FilterParams, Quality, defaults_from

POLICIES = ("none", "flagged", "realism", "label", "combined")


@dataclass(frozen=True)
@defaults_from(FilterParams, Quality)
class FilterConfig:
    policy: str
    keep_fraction: float
    knn_k: int
    min_pixel_std: float
    min_pixel_mean: float


def knn_ratio(real: np.ndarray, synthetic: np.ndarray, k: int) -> np.ndarray:
    """Distance of each synthetic embedding to its k-th nearest real one, over the real set's median
    k-NN distance (its own point excluded)."""
    k = max(1, min(k, len(real) - 1))
    nn = NearestNeighbors(n_neighbors=k + 1).fit(real)
    radius = float(np.median(nn.kneighbors(real)[0][:, k]))
    dist = nn.kneighbors(synthetic, n_neighbors=k)[0][:, k - 1]
    return dist / max(radius, 1e-12)


def label_probability(real: np.ndarray, real_labels: np.ndarray, synthetic: np.ndarray, synthetic_labels: np.ndarray,
                      seed: int = 0) -> np.ndarray:
    """P(intended label | image) under a logistic regression on the real training embeddings."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(real, real_labels)
    proba = clf.predict_proba(synthetic)
    cols = {c: i for i, c in enumerate(clf.classes_)}
    missing = sorted(set(synthetic_labels) - set(cols))
    if missing:
        raise UserValueError(f"synthetic labels {missing} have no real training image to score them against")
    return proba[np.arange(len(synthetic)), [cols[lab] for lab in synthetic_labels]]


def _rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1], higher = better."""
    return pd.Series(x).rank(pct=True, method="average").to_numpy()


def select(scores: pd.DataFrame, cfg: FilterConfig) -> pd.DataFrame:
    """`scores` with `score`, `kept` and `reason` set by the policy."""
    if cfg.policy not in POLICIES:
        raise UserValueError(f"filter.policy: unknown policy {cfg.policy!r}; use one of {', '.join(POLICIES)}")
    out = scores.copy()
    out["score"] = np.nan
    out["reason"] = ""
    out.loc[out.near_copy, "reason"] = "near-copy"
    out.loc[out.blank, "reason"] = "blank"
    if cfg.policy == "none":
        out["kept"], out["reason"] = True, ""
        return out
    for _, idx in out.groupby("label").groups.items():
        g = out.loc[idx]
        ok = g[g.reason == ""]
        realism, label = _rank(-ok.knn_ratio.to_numpy()), _rank(ok.label_prob.to_numpy())
        score = {"realism": realism, "label": label}.get(cfg.policy, (realism + label) / 2)
        out.loc[ok.index, "score"] = np.round(score, 6)
        n_keep = int(round(cfg.keep_fraction * len(g))) if cfg.policy != "flagged" else len(g)
        order = ok.index[np.argsort(-score, kind="stable")]
        out.loc[order[n_keep:], "reason"] = "low score"
    out["kept"] = out.reason == ""
    return out


def score_synthetic(synthetic: pd.DataFrame, pixels: pd.DataFrame, memorization: pd.DataFrame,
                    real_emb: np.ndarray, real_labels: np.ndarray, syn_emb: np.ndarray, cfg: FilterConfig,
                    seed: int = 0) -> pd.DataFrame:
    """One row per synthetic image (contracts.FILTER_COLUMNS).

    `pixels`: path, pixel_std, pixel_mean (the synthetic gate's reports/quality/synthetic_images.csv); `memorization`: the
    audit's table; embeddings in the audit's feature space, real = training split only."""
    if len(syn_emb) != len(synthetic):
        raise UserValueError(f"{len(syn_emb)} synthetic embeddings for {len(synthetic)} synthetic images: "
                             "re-run the audit stage")
    px = pixels.set_index("path").reindex(synthetic.path)
    blank = ((px.pixel_std < cfg.min_pixel_std) | (px.pixel_mean < cfg.min_pixel_mean) | px.pixel_std.isna()).to_numpy()
    near = synthetic.image_id.map(memorization.set_index("image_id").near_copy.astype(str).str.lower() == "true")
    scores = pd.DataFrame({
        "image_id": synthetic.image_id.to_numpy(), "label": synthetic.label.to_numpy(), "blank": blank,
        "near_copy": near.fillna(False).astype(bool).to_numpy(),
        "knn_ratio": np.round(knn_ratio(real_emb, syn_emb, cfg.knn_k), 4),
        "label_prob": np.round(label_probability(real_emb, real_labels, syn_emb, synthetic.label.to_numpy(), seed), 4),
    })
    return select(scores, cfg)[FILTER_COLUMNS]


def summary(scores: pd.DataFrame, cfg: FilterConfig) -> dict:
    kept = scores[scores.kept]
    return {"policy": cfg.policy, "keep_fraction": cfg.keep_fraction, "synthetic_images": int(len(scores)),
            "kept": int(len(kept)), "kept_per_class": {k: int(v) for k, v in kept.groupby("label").size().items()},
            "dropped": {k: int(v) for k, v in scores[~scores.kept].groupby("reason").size().items()},
            "median_knn_ratio": {"kept": _median(kept.knn_ratio), "dropped": _median(scores[~scores.kept].knn_ratio)},
            "median_label_prob": {"kept": _median(kept.label_prob), "dropped": _median(scores[~scores.kept].label_prob)}}


def _median(x: pd.Series) -> float | None:
    return round(float(x.median()), 4) if len(x) else None


def kept_images(synthetic: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of synthetic/metadata.csv the filter kept (scores read from CSV hold "True"/"False")."""
    if set(synthetic.image_id) != set(scores.image_id):
        raise UserValueError("the filter's scores do not list the synthetic set's images: re-run the filter stage")
    keep = set(scores.image_id[scores.kept.astype(str).str.lower() == "true"])
    return synthetic[synthetic.image_id.isin(keep)]
