"""Stage preprocess: hair removal, lesion centring, resize, dedup, grouped splits -> data/prepared."""
import json
from pathlib import Path

import cv2
import pandas as pd

from dermsynth.config import save_resolved
from dermsynth.data.prepare import build_manifest, example_grid, preprocess_all
from dermsynth.data.preprocess import SET_KEYS, prep_config
from dermsynth.demo.hair_score import score_centring, score_hair_removal
from dermsynth.files import write_json
from dermsynth.paths import replace_output_dir
from stages._common import main


def run(params: dict) -> None:
    p, paths = params["prepare"], params["paths"]
    split, cfg = {k: p[k] for k in SET_KEYS}, prep_config(p)
    prepared, reports = Path(paths["prepared"]), Path(paths["reports"]) / "preprocess"
    replace_output_dir(prepared, "paths.prepared")  # stale images must not linger; only a folder we made goes
    reports.mkdir(parents=True, exist_ok=True)
    interim = pd.read_csv(Path(paths["interim"]) / "manifest.csv", keep_default_na=False, dtype=str)
    df = preprocess_all(interim, Path(paths["raw"]), prepared / "images", Path("."), cfg, split["workers"])
    manifest, summary = build_manifest(df, split["phash_distance"], split["val_fraction"], split["test_fraction"],
                                       params["data_seed"])
    manifest.to_csv(prepared / "manifest.csv", index=False)
    save_resolved({**vars(cfg), **split, "seed": params["data_seed"]}, prepared / "config.json")
    summary["hair_removal"] = score_hair_removal(cfg, seed=params["data_seed"])
    summary["centring_on_phantoms"] = score_centring(cfg, seed=params["data_seed"])
    write_json((reports / "summary.json"), summary)
    grid = example_grid(interim, Path(paths["raw"]), cfg, seed=params["data_seed"])
    cv2.imwrite(str(reports / "examples.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(run)
