"""The audit of the synthetic set: embeddings, memorisation and fidelity in the fixed feature space.

Nothing here reads a classifier or a prediction, so `dvc exp run -S ratio=...` never re-runs it;
the FiftyOne dataset (which does show predictions) is built by its own stage.
"""
from __future__ import annotations

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
from dermsynth.audit.reconstruction import reconstruction_ceiling
from dermsynth.audit.tstr import TEST_SPLIT, classification_accuracy_score
from dermsynth.contracts import MEMORIZATION_COLUMNS
from dermsynth.data.dedup import phash64
from dermsynth.files import write_json
from dermsynth.parallel import pmap
from dermsynth.params import Audit, defaults_from


@dataclass(frozen=True)
@defaults_from(Audit)
class AuditConfig:
    heldout_quantile: float
    phash_max: int
    max_near_copy_rate: float
    knn_k: int
    kid_subsets: int
    kid_subset_size: int
    near_copy_pairs: int
    reconstruction_images: int
    workers: int
    seed: int = 0  # KID subsets and the TSTR classifier (data_seed; not a params.yaml key of the audit block)


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
    """FID, KID (with the subsets it drew), precision/recall/density/coverage per class and over all classes."""
    out = {}
    groups = [(lab, real_labels == lab, syn_labels == lab) for lab in sorted(set(syn_labels))]
    for name, r, s in groups + [("all", np.ones(len(real_emb), bool), np.ones(len(syn_emb), bool))]:
        out[name] = {**fid_kid(real_emb[r], syn_emb[s], cfg.seed, cfg.kid_subset_size, cfg.kid_subsets),
                     **prdc(real_emb[r], syn_emb[s], cfg.knn_k),
                     "n_real": int(r.sum()), "n_synthetic": int(s.sum())}
    return out


def audit(manifest: pd.DataFrame, synthetic: pd.DataFrame, feature_dir: Path, cfg: AuditConfig,
          root: Path = Path("."), vae=None) -> dict:
    """Embeddings (real rows, then synthetic), memorisation table, fidelity and a summary. With the
    generator's `vae`, the classification accuracy score also gets its ceiling (dermsynth.audit.reconstruction)."""
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
        classes = list(fidelity)
        fidelity["feature_space"] = describe(feature_dir)
    with timer.step("classification accuracy score"):  # train on synthetic, test on the real test split
        fidelity["classification_accuracy_score"] = cas = classification_accuracy_score(
            real_emb, manifest.label.to_numpy(), manifest.split.to_numpy(), syn_emb, synthetic.label.to_numpy(),
            cfg.seed)
    if vae is not None and cfg.reconstruction_images:
        with timer.step("latent ceiling"):
            test = (manifest.split == TEST_SPLIT).to_numpy()
            cas |= reconstruction_ceiling(extractor, vae, manifest, real_emb[test], manifest.label.to_numpy()[test],
                                          cfg.reconstruction_images, cfg.seed, root)
    rate = float(mem.near_copy.mean()) if len(mem) else 0.0
    summary = {"near_copies": int(mem.near_copy.sum()), "near_copy_rate": round(rate, 5),
               "distance_threshold": round(dist_max, 4), "heldout_quantile": cfg.heldout_quantile,
               "phash_max": cfg.phash_max,
               "near_copies_by_embedding": int((mem.nn_distance <= dist_max).sum()),
               "near_copies_by_phash": int((mem.phash_distance <= cfg.phash_max).sum()),
               "max_near_copy_rate": cfg.max_near_copy_rate, "real_images": int(len(manifest)),
               "synthetic_images": int(len(synthetic)),
               "fidelity": {k: {m: (round(v, 5) if isinstance(v, float) else v) for m, v in d.items()}
                            for k, d in fidelity.items() if k in classes},
               "feature_space": fidelity["feature_space"],
               "classification_accuracy_score": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in cas.items()
                                                 if k not in ("method", "ceiling_method", "n_by_class")}}
    return {"embeddings": np.concatenate([real_emb, syn_emb]), "memorization": mem[MEMORIZATION_COLUMNS],
            "fidelity": fidelity, "summary": summary, "timer": timer}


NEAR_COPY_EXPLAINED = (
    "d = Euclidean distance to the nearest real training image in the audit's fixed feature space, each feature "
    "standardised over the real training images (so d is in feature standard deviations); "
    "bits = perceptual-hash Hamming distance, of 64, to the nearest real training image by hash "
    "(named when it is another image). Near-copy: d or bits as small as a re-photographed lesion's.")


def _pair_caption(r, distance_max: float | None, phash_max: int | None) -> str:
    bits = f"{r.phash_distance} bits" + ("" if r.nn_phash_real_image_id == r.nn_real_image_id
                                         else f" (to {r.nn_phash_real_image_id})")
    by = [w for w, hit in (("d", distance_max is not None and r.nn_distance <= distance_max),
                           ("bits", phash_max is not None and r.phash_distance <= phash_max)) if hit]
    return f"nearest: {r.nn_real_image_id}\nd={r.nn_distance:.2f}, {bits}" + (f"\nflagged by {' and '.join(by)}" if by else "")


def near_copy_sheet(mem: pd.DataFrame, manifest: pd.DataFrame, synthetic: pd.DataFrame, n: int, root: Path = Path("."),
                    distance_max: float | None = None, phash_max: int | None = None):
    """The flagged pairs (else the closest ones), synthetic beside its nearest training image; the title says
    what d and bits are (`distance_max`, `phash_max`: the audit's thresholds, named in it and the captions)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    flagged = mem[mem.near_copy].sort_values("nn_distance")
    rows = flagged if len(flagged) else mem.sort_values("nn_distance")
    rows = rows.head(max(n, 1))
    real_path = dict(zip(manifest.image_id, manifest.path))
    syn_path = dict(zip(synthetic.image_id, synthetic.path))
    # constrained layout reserves the suptitle's height: tight_layout let it run into the first captions
    fig, axes = plt.subplots(len(rows), 2, figsize=(5.6, 2.3 * len(rows) + 1.6), squeeze=False, layout="constrained")
    for ax, r in zip(axes, rows.itertuples()):
        ax[0].imshow(Image.open(root / syn_path[r.image_id]).convert("RGB"))
        ax[0].set_title(f"{r.image_id}\nsynthetic {r.label}", fontsize=7)
        ax[1].imshow(Image.open(root / real_path[r.nn_real_image_id]).convert("RGB"))
        ax[1].set_title(_pair_caption(r, distance_max, phash_max), fontsize=7)
        for a in ax:
            a.axis("off")
    head = (f"near-copies: {len(flagged)} flagged, the closest {len(rows)} shown" if len(flagged)
            else f"no near-copies flagged: the {len(rows)} closest pairs")
    limits = [f"d <= {distance_max:.3g}" if distance_max is not None else "",
              f"bits <= {phash_max}" if phash_max is not None else ""]
    limits = " or ".join(x for x in limits if x)
    text = NEAR_COPY_EXPLAINED + (f" Thresholds: {limits}." if limits else "")
    fig.suptitle(head + "\nleft: synthetic image; right: its nearest real training image\n"
                 + "\n".join(textwrap.wrap(text, 92)), fontsize=7)
    return fig


def write_outputs(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result["memorization"].to_csv(out_dir / "memorization.csv", index=False)
    write_json((out_dir / "fidelity.json"), result["fidelity"])
    write_json((out_dir / "summary.json"), result["summary"])
    np.save(out_dir / "embeddings.npy", result["embeddings"].astype(np.float32))
