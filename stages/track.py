"""Stage track@<model>: the MLflow run of a classifier made whole from the DVC outputs.

MLflow lives outside DVC: when DVC skips or restores a stage (a fresh clone whose classifiers
re-train byte-identically, so `evaluate` is skipped; `dvc pull --run-cache`; `dvc exp apply`; a new
tracking store), nothing would log. This stage's output is an untracked marker (`.mlflow-sync/`,
git-ignored), so a checkout without it runs the stage, which logs the test metrics into the run
that trained the model, or logs the whole run from the outputs where none did here. Its content is
the run's condition, the same bytes on every identical run (`dvc.lock` reproduces).
"""
import argparse
import json
from pathlib import Path

from dermsynth.classify.models import model_slug
from dermsynth.tracking import complete_run, condition_key
from stages._common import main

MARKERS = Path(".mlflow-sync")


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    name = ap.parse_args().model
    slug, rep = model_slug(name), Path(params["paths"]["reports"])
    mdir = Path("models/classifiers") / slug
    metrics = json.loads((rep / "metrics" / f"{slug}.json").read_text())
    artifacts = [rep / "plots" / slug / "roc_confusion.png", rep / "plots" / slug / "gradcam.png",
                 rep / "metrics" / f"{slug}.json", rep / "metrics" / f"{slug}_subgroups.csv"]
    run_id, made = complete_run(mdir, {k: v for k, v in metrics.items() if isinstance(v, float)}, artifacts)
    MARKERS.mkdir(exist_ok=True)
    (MARKERS / f"{slug}.json").write_text(json.dumps({"model": name, "condition": condition_key(mdir)}) + "\n")
    print(f"{name}: MLflow run {run_id} " + ("made from the DVC outputs (no run trained this model here)" if made
                                           else "completed with the test metrics"))


if __name__ == "__main__":
    main(run)
