"""The audit of the synthetic set: embeddings, memorisation and fidelity in the fixed feature space.

Nothing here reads a classifier or a prediction, so `dvc exp run -S ratio=...` never re-runs it;
the FiftyOne dataset (which does show predictions) is built by its own stage.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.audit.features import describe, embed, load_backbone
from dermsynth.audit.fidelity import fid_kid, prdc
from dermsynth.audit.memorization import flag_near_copies, heldout_threshold, nearest_real
from dermsynth.contracts import MEMORIZATION_COLUMNS
from dermsynth.data.dedup import phash64
from dermsynth.parallel import pmap


@dataclass(frozen=True)
class AuditConfig:
    heldout_quantile: float = 0.01  # near-copy: closer to a training image than the 1st percentile of
    #                                  held-out real images' nearest-training distances...
    phash_max: int = 4  # ...or within this many perceptual-hash bits (the splits' duplicate rule)
    max_near_copy_rate: float = 0.05  # fail the stage when more synthetic images than this are near-copies
    knn_k: int = 5  # k of precision / recall / density / coverage (Naeem et al. use 5)
    kid_subset: int = 100
    near_copy_pairs: int = 12  # pairs drawn side by side in near_copies.png
    workers: int = 0
    seed: int = 0  # KID subsets (data_seed; not a params.yaml key of the audit block)


PARAM_KEYS = frozenset(f for f in AuditConfig.__dataclass_fields__ if f != "seed")  # audit.* keys the stage reads


def _phash_file(path: str) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return phash64(np.asarray(im.convert("RGB")))


class Timer:
    """Wall time per named step, printed as it ends (the audit reports where its minutes go)."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t, 2)
        print(f"audit: {name} took {self.times[name]:.1f} s", flush=True)


def fidelity_table(real_emb: np.ndarray, real_labels: np.ndarray, syn_emb: np.ndarray, syn_labels: np.ndarray,
                   cfg: AuditConfig) -> dict:
    """FID, KID, precision/recall/density/coverage per class and over all classes."""
    out = {}
    groups = [(lab, real_labels == lab, syn_labels == lab) for lab in sorted(set(syn_labels))]
    for name, r, s in groups + [("all", np.ones(len(real_emb), bool), np.ones(len(syn_emb), bool))]:
        out[name] = {**fid_kid(real_emb[r], syn_emb[s], cfg.seed, cfg.kid_subset), **prdc(real_emb[r], syn_emb[s], cfg.knn_k),
                     "n_real": int(r.sum()), "n_synthetic": int(s.sum())}
    return out


def audit(manifest: pd.DataFrame, synthetic: pd.DataFrame, feature_dir: Path, cfg: AuditConfig,
          root: Path = Path(".")) -> dict:
    """Embeddings (real rows, then synthetic), memorisation table, fidelity and a summary."""
    timer = Timer()
    with timer.step("embeddings"):
        extractor = load_backbone(feature_dir)
        real_emb = embed(extractor, list(manifest.path), root, desc="embed real")
        syn_emb = embed(extractor, list(synthetic.path), root, desc="embed synthetic")
    with timer.step("perceptual hashes"):
        syn_hash = np.array(pmap(_phash_file, [str(root / p) for p in synthetic.path], cfg.workers, desc="phash"),
                            dtype=np.uint64)
        real_hash = np.array([int(h, 16) for h in manifest.phash], dtype=np.uint64)
    train = (manifest.split == "train").to_numpy()
    train_ids = manifest.image_id.to_numpy()[train]
    with timer.step("memorisation"):
        dist_max = heldout_threshold(real_emb[~train], real_emb[train], cfg.heldout_quantile)
        nn = nearest_real(syn_emb, real_emb[train], syn_hash, real_hash[train])
        mem = pd.DataFrame({
            "image_id": synthetic.image_id.to_numpy(), "label": synthetic.label.to_numpy(),
            "sampler": synthetic.sampler.to_numpy(), "nn_real_image_id": train_ids[nn.nn_embedding],
            "nn_distance": nn.distance.round(4).to_numpy(), "nn_phash_real_image_id": train_ids[nn.nn_phash],
            "phash_distance": nn.phash_distance.to_numpy(),
        })
        mem["near_copy"] = flag_near_copies(nn, dist_max, cfg.phash_max)
    with timer.step("fidelity"):
        fidelity = fidelity_table(real_emb[train], manifest.label.to_numpy()[train], syn_emb, synthetic.label.to_numpy(), cfg)
        fidelity["feature_space"] = describe(feature_dir)
    rate = float(mem.near_copy.mean()) if len(mem) else 0.0
    summary = {"near_copies": int(mem.near_copy.sum()), "near_copy_rate": round(rate, 5),
               "distance_threshold": round(dist_max, 4), "heldout_quantile": cfg.heldout_quantile,
               "phash_max": cfg.phash_max,
               "near_copies_by_embedding": int((mem.nn_distance <= dist_max).sum()),
               "near_copies_by_phash": int((mem.phash_distance <= cfg.phash_max).sum()),
               "max_near_copy_rate": cfg.max_near_copy_rate, "real_images": int(len(manifest)),
               "synthetic_images": int(len(synthetic)),
               "fidelity": {k: {m: (round(v, 5) if isinstance(v, float) else v) for m, v in d.items()}
                            for k, d in fidelity.items() if k != "feature_space"},
               "feature_space": fidelity["feature_space"]}
    return {"embeddings": np.concatenate([real_emb, syn_emb]), "memorization": mem[MEMORIZATION_COLUMNS],
            "fidelity": fidelity, "summary": summary, "timer": timer}


def near_copy_sheet(mem: pd.DataFrame, manifest: pd.DataFrame, synthetic: pd.DataFrame, n: int, root: Path = Path(".")):
    """The flagged pairs (else the closest ones), synthetic beside its nearest training image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    flagged = mem[mem.near_copy].sort_values("nn_distance")
    rows = flagged if len(flagged) else mem.sort_values("nn_distance")
    rows = rows.head(max(n, 1))
    real_path = dict(zip(manifest.image_id, manifest.path))
    syn_path = dict(zip(synthetic.image_id, synthetic.path))
    fig, axes = plt.subplots(len(rows), 2, figsize=(4.4, 2.2 * len(rows)), squeeze=False)
    for ax, r in zip(axes, rows.itertuples()):
        ax[0].imshow(Image.open(root / syn_path[r.image_id]).convert("RGB"))
        ax[0].set_title(f"{r.image_id}", fontsize=7)
        ax[1].imshow(Image.open(root / real_path[r.nn_real_image_id]).convert("RGB"))
        ax[1].set_title(f"{r.nn_real_image_id}: d={r.nn_distance:.2f}, {r.phash_distance} bits", fontsize=7)
        for a in ax:
            a.axis("off")
    fig.suptitle("near-copies (flagged)" if len(flagged) else "closest pairs (none flagged)", fontsize=9)
    fig.tight_layout()
    return fig


def write_outputs(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result["memorization"].to_csv(out_dir / "memorization.csv", index=False)
    (out_dir / "fidelity.json").write_text(json.dumps(result["fidelity"], indent=2) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(result["summary"], indent=2) + "\n")
    np.save(out_dir / "embeddings.npy", result["embeddings"].astype(np.float32))
