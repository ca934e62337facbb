"""Stage ensemble@<name>: one `evaluate.ensembles` entry evaluated like a model -> reports/ensembles/<name>/,
reports/metrics/<name>.json and its MLflow run.

It reads the members' prediction files (evaluate@<member>), never a network: seconds. Its MLflow marker
(`.mlflow-sync/ensemble-<name>.json`, git-ignored like the track stage's) makes a checkout without it
log the run, so a fresh clone's store holds the ensemble's run too.
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from dermsynth.classify.ensemble import METHOD, evaluate_ensemble
from dermsynth.classify.evaluate import plot_roc_and_confusion
from dermsynth.classify.models import model_slug
from dermsynth.classify.subgroups import subgroup_table, worst_and_gap
from dermsynth.files import write_json
from dermsynth.tracking import ensemble_run
from stages._common import main
from stages.evaluate import read_manifest

MARKERS = Path(".mlflow-sync")


def _member(pred_dir: Path, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    slug = model_slug(model)
    test = pd.concat([pd.read_csv(pred_dir / f"{slug}{suffix}.csv", dtype={"image_id": str}, keep_default_na=False)
                      for suffix in ("", "_external")], ignore_index=True)
    return pd.read_csv(pred_dir / f"{slug}_val.csv", dtype={"image_id": str}), test


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    name = ap.parse_args().name
    e, rep = params["evaluate"], Path(params["paths"]["reports"])
    members = e["ensembles"][name]
    loaded = {m: _member(rep / "predictions", m) for m in members}
    pred, metrics = evaluate_ensemble({m: v for m, (v, _) in loaded.items()}, {m: t for m, (_, t) in loaded.items()},
                                      e["bootstrap"], params["seed"])
    manifest = read_manifest(Path(params["paths"]["prepared"]) / "manifest.csv")
    external = {n: read_manifest(Path(params["paths"]["testsets"]) / n / "manifest.csv") for n in e["external"]}
    out = rep / "ensembles" / name
    out.mkdir(parents=True, exist_ok=True)
    outside = pred["testset"].isin(list(external))
    pred[~outside].to_csv(out / "predictions.csv", index=False)
    pred[outside].to_csv(out / "predictions_external.csv", index=False)
    subgroups = subgroup_table(pred, manifest, external, e["bootstrap"], params["seed"])
    subgroups.to_csv(out / "subgroups.csv", index=False)
    metrics |= worst_and_gap(subgroups)
    write_json(rep / "metrics" / f"{name}.json", metrics)
    plot_roc_and_confusion(pred, metrics, f"{name} (ensemble of {', '.join(members)})", out / "roc_confusion.png")
    run_id, made = ensemble_run(name, {m: Path("models/classifiers") / model_slug(m) for m in members}, METHOD,
                                {k: v for k, v in metrics.items() if isinstance(v, float)},
                                [out / "roc_confusion.png", rep / "metrics" / f"{name}.json", out / "subgroups.csv"])
    MARKERS.mkdir(exist_ok=True)
    (MARKERS / f"ensemble-{name}.json").write_text(json.dumps({"ensemble": name, "members": members}) + "\n")
    flat = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float) and k.endswith(("_auc", "_balanced_accuracy"))}
    print(f"{name} (ensemble, MLflow run {run_id}{' made' if made else ''}): " + json.dumps(flat))


if __name__ == "__main__":
    main(run)
