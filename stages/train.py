"""Stage train@<model>: a timm classifier on the hybrid real+synthetic training set (params: ratio).

Opens the MLflow run of (model, ratio, seed); the evaluate stage completes it with test metrics.
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from dermsynth.classify.mixing import MixConfig, mix
from dermsynth.classify.models import model_slug
from dermsynth.classify.train import TrainConfig, train_classifier
from dermsynth.config import from_block, save_resolved
from dermsynth.tracking import start_run
from stages._common import main


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    name = ap.parse_args().model
    t = dict(params["train"])
    mix_cfg = from_block(MixConfig, t.pop("mixing"))
    overrides = t.pop("overrides", {}).get(name, {})
    t.pop("models")
    img_size = t.pop("img_size") or params["prepare"]["size"]  # 0 = the prepared images' size
    cfg = from_block(TrainConfig, {**t, **overrides, "model": name, "img_size": img_size, "seed": params["seed"]})
    ratio = float(params["ratio"])
    manifest = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(params["paths"]["synthetic"]) / "metadata.csv", keep_default_na=False)
    train_df, counts = mix(manifest[manifest.split == "train"], synthetic, ratio, mix_cfg, params["seed"])
    out = Path("models/classifiers") / model_slug(name)
    out.mkdir(parents=True, exist_ok=True)
    train_df.to_csv(out / "training_set.csv", index=False)
    print(f"training set (ratio={ratio}, {mix_cfg.mode}): " + json.dumps(counts))
    run_params = {"ratio": ratio, "model": name, "seed": params["seed"], "mixing": vars(mix_cfg), **vars(cfg)}
    with start_run(f"{name} ratio={ratio} seed={params['seed']}", run_params) as (mlflow, active):
        mlflow.log_metrics({k: float(v) for k, v in counts.items()})
        summary = train_classifier(train_df, manifest[manifest.split == "val"], cfg, out,
                                   on_epoch=lambda epoch, row: mlflow.log_metrics(row, step=epoch))
        mlflow.log_metrics({"best_val_auc": summary["best_val_auc"], "train_images_per_second": summary["images_per_second"]})
        run_id = active.info.run_id
    save_resolved({"train": vars(cfg), "mixing": vars(mix_cfg), "ratio": ratio}, out / "config.json")
    (out / "summary.json").write_text(json.dumps({**summary, **counts, "mlflow_run_id": run_id}, indent=2) + "\n")
    print(f"{name}: best val AUROC {summary['best_val_auc']:.4f} at epoch {summary['best_epoch']}, "
          f"{summary['images_per_second']:.0f} training images/s, MLflow run {run_id}")


if __name__ == "__main__":
    main(run)
