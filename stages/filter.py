"""Stage filter: score every synthetic image and keep the ones the classifiers may draw (data/filter/scores.csv)."""
from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.config import from_block
from dermsynth.files import write_json
from dermsynth.filter import FilterConfig, score_synthetic, summary
from stages._common import main


def run(params: dict) -> None:
    paths, q = params["paths"], params["quality"]
    cfg = from_block(FilterConfig, {**params["filter"], "min_pixel_std": q["min_pixel_std"],
                                    "min_pixel_mean": q["min_pixel_mean"]})
    manifest = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(paths["synthetic"]) / "metadata.csv", keep_default_na=False)
    audit_dir = Path(paths["reports"]) / "audit"
    emb = np.load(audit_dir / "embeddings.npy")  # real rows (manifest order), then synthetic rows
    memorization = pd.read_csv(audit_dir / "memorization.csv", keep_default_na=False)
    train = (manifest.split == "train").to_numpy()
    pixels = pd.read_csv(Path(paths["reports"]) / "quality" / "synthetic_images.csv", keep_default_na=False)
    scores = score_synthetic(synthetic, pixels, memorization,
                             emb[: len(manifest)][train], manifest.label.to_numpy()[train], emb[len(manifest):], cfg,
                             seed=params["data_seed"])
    out = Path(paths["filter"])
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "scores.csv", index=False)
    s = summary(scores, cfg)
    rep = Path(paths["reports"]) / "filter"
    rep.mkdir(parents=True, exist_ok=True)
    write_json((rep / "summary.json"), s)
    print(f"filter ({cfg.policy}, keep_fraction {cfg.keep_fraction}): kept {s['kept']} of {s['synthetic_images']} "
          f"synthetic images; dropped {s['dropped'] or 'none'}")


if __name__ == "__main__":
    main(run)
