"""Stage evaluate@<model>: ISIC, HAM10000 and external test metrics, predictions, plots, Grad-CAM -> reports.

The track stage logs them to MLflow (so that a run whose evaluation DVC skipped is complete too)."""
import argparse
import json
from pathlib import Path

import pandas as pd

from dermsynth.classify.evaluate import (confusion_table, evaluate_model, gradcam_grid, plot_roc_and_confusion, roc_table,
                                         split_test_sets)
from dermsynth.classify.models import model_slug
from dermsynth.classify.subgroups import subgroup_table, worst_and_gap
from dermsynth.classify.train import TrainConfig, load_classifier, transforms
from dermsynth.files import write_json
from stages._common import main


def read_manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype={"image_id": str})


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    name = ap.parse_args().model
    e, slug = params["evaluate"], model_slug(name)
    mdir = Path("models/classifiers") / slug
    cfg = TrainConfig(**json.loads((mdir / "config.json").read_text())["train"])
    model = load_classifier(mdir, cfg)
    _, t_eval = transforms(model, cfg)
    manifest = read_manifest(Path(params["paths"]["prepared"]) / "manifest.csv")
    external = {n: read_manifest(Path(params["paths"]["testsets"]) / n / "manifest.csv") for n in e["external"]}
    pred, metrics, val_pred = evaluate_model(model, t_eval, manifest, e["bootstrap"], params["seed"], external=external)
    rep = Path(params["paths"]["reports"])
    for sub in ("metrics", "predictions", f"plots/{slug}"):
        (rep / sub).mkdir(parents=True, exist_ok=True)
    outside = pred["testset"].isin(list(external))
    pred[~outside].to_csv(rep / "predictions" / f"{slug}.csv", index=False)
    pred[outside].to_csv(rep / "predictions" / f"{slug}_external.csv", index=False)
    val_pred.to_csv(rep / "predictions" / f"{slug}_val.csv", index=False)
    # per patient group, recomputable from the predictions joined with the manifests on image_id
    subgroups = subgroup_table(pred, manifest, external, e["bootstrap"], params["seed"])
    subgroups.to_csv(rep / "metrics" / f"{slug}_subgroups.csv", index=False)
    metrics |= worst_and_gap(subgroups)
    write_json((rep / "metrics" / f"{slug}.json"), metrics)
    roc_table(pred).to_csv(rep / "plots" / slug / "roc.csv", index=False)
    confusion_table(pred).to_csv(rep / "plots" / slug / "confusion.csv", index=False)
    png = rep / "plots" / slug / "roc_confusion.png"
    plot_roc_and_confusion(pred, metrics, name, png)
    per_cell = max(1, e["gradcam_images"] // 4)  # a quarter per (test set, class), at least one of each
    sample = pd.concat([g.groupby("label").head(per_cell) for g in split_test_sets(manifest).values()])
    gradcam_grid(model, t_eval, sample, rep / "plots" / slug / "gradcam.png", model_name=name,
                 threshold=metrics["threshold"])
    flat = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(f"{name}: " + json.dumps(flat))


if __name__ == "__main__":
    main(run)
