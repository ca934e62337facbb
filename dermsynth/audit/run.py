"""The audit: embeddings, memorisation, fidelity, and the FiftyOne dataset, from the pipeline's outputs."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.audit.fidelity import fid_kid, precision_recall
from dermsynth.audit.features import embed, load_backbone, load_uint8
from dermsynth.audit.memorization import flag_near_copies, heldout_threshold, nearest_real
from dermsynth.data.dedup import phash64
from dermsynth.parallel import pmap


@dataclass(frozen=True)
class AuditConfig:
    embedding_model: str = "vit_tiny_patch16_224"  # a trained classifier (models/classifiers/<name>)
    heldout_quantile: float = 0.01  # near-copy: closer to a training image than all but this share of
    #                                  held-out real images are (embedding space)...
    phash_max: int = 4  # ...or within this many perceptual-hash bits (the splits' duplicate rule)
    max_near_copy_rate: float = 0.05  # fail the stage when more synthetic images than this are near-copies
    knn_k: int = 3
    visualization: str = "pca"  # pca | tsne (umap needs umap-learn)
    workers: int = 0


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


def audit(manifest: pd.DataFrame, synthetic: pd.DataFrame, classifiers: Path, cfg: AuditConfig,
          root: Path = Path(".")) -> dict:
    """Everything but the FiftyOne dataset: returns embeddings, memorisation table and summary."""
    timer = Timer()
    with timer.step("embeddings"):
        extractor = load_backbone(classifiers / cfg.embedding_model)
        real_emb = embed(extractor, list(manifest.path), root, desc="embed real")
        syn_emb = embed(extractor, list(synthetic.path), root, desc="embed synthetic")
    with timer.step("perceptual hashes"):
        syn_hash = np.array(pmap(_phash_file, [str(root / p) for p in synthetic.path], cfg.workers, desc="phash"),
                            dtype=np.uint64)
        real_hash = np.array([int(h, 16) for h in manifest.phash], dtype=np.uint64)
    train = (manifest.split == "train").to_numpy()
    train_ids = manifest.image_id.to_numpy()[train]
    with timer.step("memorisation"):
        cosine_min = heldout_threshold(real_emb[~train], real_emb[train], cfg.heldout_quantile)
        nn = nearest_real(syn_emb, real_emb[train], syn_hash, real_hash[train])
        mem = pd.DataFrame({
            "image_id": synthetic.image_id, "label": synthetic.label, "sampler": synthetic.sampler,
            "nn_real_image_id": train_ids[nn.nn_embedding], "cosine_similarity": nn.cosine_similarity.round(5),
            "nn_phash_real_image_id": train_ids[nn.nn_phash], "phash_distance": nn.phash_distance,
        })
        mem["near_copy"] = flag_near_copies(nn, cosine_min, cfg.phash_max)
    fidelity = {}
    with timer.step("fidelity"):
        size = extractor.img_size
        for label in sorted(synthetic.label.unique()):
            r = manifest[train & (manifest.label == label).to_numpy()]
            s = synthetic[synthetic.label == label]
            fk = fid_kid(extractor, load_uint8(list(r.path), root, size), load_uint8(list(s.path), root, size))
            pr = precision_recall(real_emb[train & (manifest.label == label).to_numpy()],
                                  syn_emb[(synthetic.label == label).to_numpy()], cfg.knn_k)
            fidelity[label] = {**fk, **pr, "n_real": int(len(r)), "n_synthetic": int(len(s))}
        fidelity["feature_space"] = (f"pre-logit features of the trained {cfg.embedding_model} classifier "
                                     "(Inception-v3 weights cannot be downloaded offline)")
    rate = float(mem.near_copy.mean()) if len(mem) else 0.0
    summary = {"near_copies": int(mem.near_copy.sum()), "near_copy_rate": round(rate, 5),
               "cosine_threshold": round(cosine_min, 6), "phash_max": cfg.phash_max,
               "near_copies_by_embedding": int((mem.cosine_similarity >= cosine_min).sum()),
               "near_copies_by_phash": int((mem.phash_distance <= cfg.phash_max).sum()),
               "max_near_copy_rate": cfg.max_near_copy_rate, "real_images": int(len(manifest)),
               "synthetic_images": int(len(synthetic)), "seconds": timer.times,  # the same dict, still growing
               "fidelity": {k: v for k, v in fidelity.items() if k != "feature_space"}}
    return {"embeddings": np.concatenate([real_emb, syn_emb]), "memorization": mem, "fidelity": fidelity,
            "summary": summary, "timer": timer}


def write_outputs(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result["memorization"].to_csv(out_dir / "memorization.csv", index=False)
    (out_dir / "fidelity.json").write_text(json.dumps(result["fidelity"], indent=2) + "\n")
    np.save(out_dir / "embeddings.npy", result["embeddings"].astype(np.float32))
