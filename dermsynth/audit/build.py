"""Build the FiftyOne dataset from the audit stage's outputs (the stage, and `dermsynth app`, use it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.audit.dataset import DATASET, build_dataset
from dermsynth.classify.models import model_slug


def build_from_outputs(params: dict, embeddings: np.ndarray | None = None, memorization: pd.DataFrame | None = None,
                       root: Path = Path("."), name: str = DATASET):
    paths = params["paths"]
    audit_dir = root / paths["reports"] / "audit"
    manifest = pd.read_csv(root / paths["prepared"] / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(root / paths["synthetic"] / "metadata.csv", keep_default_na=False)
    if embeddings is None and (audit_dir / "embeddings.npy").is_file():
        embeddings = np.load(audit_dir / "embeddings.npy", mmap_mode="r")  # read as the samples stream
    if memorization is None and (audit_dir / "memorization.csv").is_file():
        memorization = pd.read_csv(audit_dir / "memorization.csv")
    scores_file, tones_file = root / paths["filter"] / "scores.csv", audit_dir / "skin_tone.csv"
    scores = pd.read_csv(scores_file, keep_default_na=False) if scores_file.is_file() else None
    tones = pd.read_csv(tones_file, dtype={"image_id": str}) if tones_file.is_file() else None
    predictions = {}
    for m in params["train"]["models"]:
        f = root / paths["reports"] / "predictions" / f"{model_slug(m)}.csv"
        if f.is_file():
            predictions[m] = pd.read_csv(f, dtype={"image_id": str})
    return build_dataset(manifest, synthetic, predictions, root, embeddings, memorization, name,
                         params.get("audit", {}).get("visualization", "pca"), scores, tones)
