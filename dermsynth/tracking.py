"""The one place that talks to MLflow.

Tracking store: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<repo>/mlflow.db` with artifacts
in `<repo>/mlruns/`, where <repo> is DVC_ROOT (set by DVC in every stage, queued experiments
included: they run in a temporary clone that is deleted afterwards, so a relative path would lose
their runs) or the current directory. Experiment `dermsynth`; one run per (model, ratio, seed),
opened by the train stage and completed by the evaluate stage.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXPERIMENT = "dermsynth"
DVC_TAGS = ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "DVC_ROOT")


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    user_set = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri())
    if user_set is None:  # set_tracking_uri also exports the variable; keep "was it set by the user?" answerable
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return mlflow


# MLflow 3 opens an experiment without this tag on its (empty) GenAI traces page; tagged as model
# development, `mlflow ui` lands on the runs table
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(name: str = EXPERIMENT) -> str:
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        location = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            location = (repo_root() / "mlruns").as_uri()
        return mlflow.create_experiment(name, artifact_location=location, tags={KIND_TAG: KIND})
    if exp.tags.get(KIND_TAG) != KIND:  # made before the tag was set
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
    return exp.experiment_id


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=repo_root()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run_tags() -> dict[str, str]:
    tags = {k.lower(): os.environ[k] for k in DVC_TAGS if os.environ.get(k)}
    commit = _git_commit()
    if commit:
        tags["git_commit"] = commit
    return tags


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


MODEL_TAG = "dermsynth.model_sha256"


def model_digest(model_dir: str | Path, weights: str = "model.safetensors") -> str:
    """What ties a classifier's MLflow run to its model files (kept out of them, so they stay
    byte-identical from run to run and `dvc.lock` reproduces)."""
    import hashlib

    return hashlib.sha256((Path(model_dir) / weights).read_bytes()).hexdigest()[:16]


@contextmanager
def start_run(run_name: str, params: dict, run_id: str | None = None) -> Iterator:
    """Open (or re-open, with `run_id`) the run of one classifier; yields the mlflow module.

    A re-opened run keeps its name (MLflow would otherwise rename it to `run_name`)."""
    mlflow = _mlflow()
    kwargs = {"run_id": run_id} if run_id else {"experiment_id": experiment_id(), "run_name": run_name}
    with mlflow.start_run(**kwargs) as run:
        if run_id is None:
            mlflow.log_params(flatten(params))
            mlflow.set_tags(run_tags())
        yield mlflow, run


def find_model_run(model_dir: str | Path) -> str | None:
    """The run that trained the model in `model_dir`, matched by its weights' digest: the newest one of
    this DVC experiment (DVC_EXP_NAME) if any, else the newest one.

    Two experiments can train the same weights (ratio 0 under two filter settings); run side by side in
    a queue, "the newest" alone would hand one experiment's metrics to the other's run."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    by_digest = f"tags.`{MODEL_TAG}` = '{model_digest(model_dir)}'"
    name = os.environ.get("DVC_EXP_NAME", "").replace("'", "")
    for flt in ([f"{by_digest} and tags.dvc_exp_name = '{name}'"] if name else []) + [by_digest]:
        found = mlflow.search_runs([exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"],
                                   max_results=1)
        if not found.empty:
            return str(found.run_id.iloc[0])
    return None


def runs(experiment: str = EXPERIMENT):
    """All finished runs of the experiment as a DataFrame (params.*, metrics.*, tags.*)."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
