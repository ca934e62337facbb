"""The one place that talks to MLflow.

Tracking store: `MLFLOW_TRACKING_URI` if set, else `sqlite:///<repo>/mlflow.db` with artifacts
in `<repo>/mlruns/`, where <repo> is DVC_ROOT (set by DVC in every stage, queued experiments
included: they run in a temporary clone that is deleted afterwards, so a relative path would lose
their runs) or the current directory. Experiment `dermsynth`; one run per classifier condition (model, ratio, seed, mixing, filter, ...):
opened by the train stage (live training curves), completed by the track stage with the test
metrics and artefacts, or made whole by it from the DVC outputs when no run trained this model here
(a fresh clone whose classifiers re-trained byte-identically, so DVC skipped evaluate; outputs
restored by `dvc pull --run-cache` or `dvc exp apply`; a new tracking store).
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dermsynth.errors import UserError

EXPERIMENT = "dermsynth"
DVC_TAGS = ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "DVC_ROOT")


def repo_root() -> Path:
    from dermsynth.files import find_root

    return find_root()


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
CONDITION_TAG = "dermsynth.condition"  # the run's params and weights: what makes two runs the same run
RUN_FILE = "run.json"  # in the model folder: the run's name and params, as the train stage logged them


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


def condition_key(model_dir: str | Path) -> str:
    """The run's params (RUN_FILE) and weights in one digest; the weights alone without RUN_FILE."""
    import hashlib

    f = Path(model_dir) / RUN_FILE
    params = f.read_bytes() if f.is_file() else b""
    return hashlib.sha256(params + model_digest(model_dir).encode()).hexdigest()[:16]


def find_model_run(model_dir: str | Path) -> str | None:
    """The finished run of the model in `model_dir`, matched by its condition (params and weights): the
    newest one of this DVC experiment (DVC_EXP_NAME) if any, else the newest one.

    Two experiments can train the same weights (ratio 0 under two filter settings); run side by side in
    a queue, "the newest" alone would hand one experiment's metrics to the other's run."""
    by_digest = (f"tags.`{CONDITION_TAG}` = '{condition_key(model_dir)}'" if (Path(model_dir) / RUN_FILE).is_file()
                 else f"tags.`{MODEL_TAG}` = '{model_digest(model_dir)}'")
    return _newest_finished(by_digest)


def _newest_finished(by_digest: str) -> str | None:
    """The newest finished run matching `by_digest`: of this DVC experiment (DVC_EXP_NAME) if any, else any."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    by_digest += " and attributes.status = 'FINISHED'"
    name = os.environ.get("DVC_EXP_NAME", "").replace("'", "")
    for flt in ([f"{by_digest} and tags.dvc_exp_name = '{name}'"] if name else []) + [by_digest]:
        found = mlflow.search_runs([exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"],
                                   max_results=1)
        if not found.empty:
            return str(found.run_id.iloc[0])
    return None


def _log_training(mlflow, model_dir: Path) -> None:
    """The training side of a run from the model folder: curves per epoch, counts, best validation AUROC
    (its timings are not in the DVC output, which must be the same bytes on every identical run)."""
    import pandas as pd

    for row in pd.read_csv(model_dir / "history.csv").to_dict("records"):
        epoch = int(row.pop("epoch"))
        row.pop("phase", None)  # synthetic_then_real's phase name: the run's params say where it turns
        mlflow.log_metrics({k: float(v) for k, v in row.items()}, step=epoch)
    summary = json.loads((model_dir / "summary.json").read_text())
    mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and k != "best_epoch"})


def _log_results(run_id: str, metrics: dict[str, float], artifacts: list[Path]) -> None:
    """Test metrics and artefacts into an existing run (again on every call: the values are the same)."""
    with start_run("", {}, run_id=run_id) as (mlflow, _):
        mlflow.log_metrics(metrics)
        for a in artifacts:
            mlflow.log_artifact(str(a))


def complete_run(model_dir: str | Path, metrics: dict[str, float], artifacts: list[Path]) -> tuple[str, bool]:
    """Make the store hold this classifier's run whole: its test metrics and artefacts logged into the run
    that trained it, or, where none did here, into a run made from the DVC outputs (params, curves,
    counts). Idempotent: a second call adds no run. Returns the run id and whether it was made now."""
    model_dir = Path(model_dir)
    run_id = find_model_run(model_dir)
    made = run_id is None
    if made:
        run = json.loads((model_dir / RUN_FILE).read_text())
        with start_run(run["name"], run["params"]) as (mlflow, active):
            _log_training(mlflow, model_dir)
            mlflow.set_tags({MODEL_TAG: model_digest(model_dir), CONDITION_TAG: condition_key(model_dir),
                             "dermsynth.logged_from": "dvc outputs"})
            run_id = active.info.run_id
    _log_results(run_id, metrics, artifacts)
    return run_id, made


# the members' run params that place an ensemble's run in a study as they place a model's (dermsynth.study_stats)
ENSEMBLE_CONDITION = ("ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix", "pool", "filter_policy",
                      "keep_fraction", "schedule", "generator")


def ensemble_run(name: str, member_dirs: dict[str, Path], method: str, metrics: dict[str, float],
                 artifacts: list[Path]) -> tuple[str, bool]:
    """The MLflow run of an ensemble (evaluate.ensembles): one per (name, method, members' conditions),
    named and parametrised like a model's run (params.model is the ensemble's name) so that the study
    report and `dermsynth runs` treat it as one more model; made once, its test metrics (re-)logged on
    every call. Returns the run id and whether it was made now."""
    import hashlib

    runs = {m: json.loads((Path(d) / RUN_FILE).read_text()) for m, d in member_dirs.items()}
    first = next(iter(runs.values()))["params"]
    differ = [k for k in ENSEMBLE_CONDITION if len({json.dumps(r["params"].get(k)) for r in runs.values()}) > 1]
    if differ:
        raise UserError(f"ensemble {name}: its members were trained under different conditions ({', '.join(differ)}): "
                        "an ensemble combines models of one experiment")
    key = hashlib.sha256(json.dumps([name, method, sorted(condition_key(d) for d in member_dirs.values())]).encode())
    condition = key.hexdigest()[:16]
    run_id = _newest_finished(f"tags.`{CONDITION_TAG}` = '{condition}'")
    made = run_id is None
    if made:
        params = {k: first.get(k) for k in ENSEMBLE_CONDITION} | {"model": name, "ensemble_members": ",".join(runs),
                                                                  "ensemble_method": method}
        run_name = f"{name} ratio={float(first['ratio']):g} s={first['seed']} (ensemble)"
        with start_run(run_name, params) as (mlflow, active):
            mlflow.set_tags({CONDITION_TAG: condition, "dermsynth.ensemble": name})
            run_id = active.info.run_id
    _log_results(run_id, metrics, artifacts)
    return run_id, made


def runs(experiment: str = EXPERIMENT, finished_only: bool = True):
    """The runs of the experiment as a DataFrame (params.*, metrics.*, tags.*): the finished ones, or
    every one (`finished_only=False`: a report names the unfinished ones as skipped)."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        import pandas as pd

        return pd.DataFrame()
    return mlflow.search_runs([exp.experiment_id],
                              filter_string="attributes.status = 'FINISHED'" if finished_only else "")


# The runs table `dermsynth mlflow` opens with: MLflow 3 has no server-side default for the table's
# columns (a browser keeps its own choice in localStorage), but it opens a saved view, kept as an
# experiment tag, from the URL (`?viewStateShareKey=<id>`); the view shows the study's conditions and
# headline metrics side by side (its "Override saved view" button makes it that browser's default).
STUDY_VIEW, STUDY_VIEW_NAME = "dermsynth-study", "dermsynth study: conditions and headline metrics"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
STUDY_PARAMS = {"model": 140, "ratio": 50, "seed": 45}  # the columns and their widths in pixels
STUDY_METRICS = {"isic_auc": 95, "ham10000_auc": 105, "isic_balanced_accuracy": 160, "ham10000_balanced_accuracy": 200}


def study_view_state() -> dict:
    """The runs-table state of the study view as MLflow 3's UI serialises one: the columns shown, by the
    UI's names (params.`model`, metrics.`isic_auc`, ...), their order (the condition, then each metric on
    ISIC beside HAM10000) and widths wide enough for their names; everything else at MLflow's default."""
    widths = ({f"params.`{k}`": w for k, w in STUDY_PARAMS.items()}
              | {f"metrics.`{k}`": w for k, w in STUDY_METRICS.items()})
    fixed = {"attributes.`Run Name`": 265, "runDateAndNestInfo": 135, "duration": 75}  # always shown
    return {"selectedColumns": list(widths), "columnOrder": [*fixed, *widths], "columnWidths": fixed | widths}


def save_study_view(exp_id: str | None = None) -> str:
    """Store the study view in the experiment (an experiment tag; rewritten only when missing or holding
    another state) and return its id, the URL's `viewStateShareKey`."""
    import time

    mlflow = _mlflow()
    exp_id = exp_id or experiment_id()
    key = VIEW_TAG_PREFIX + STUDY_VIEW
    now, created = int(time.time() * 1000), None
    try:
        old = json.loads(mlflow.MlflowClient().get_experiment(exp_id).tags[key])
        if json.loads(old["state"]) == study_view_state():
            return STUDY_VIEW
        created = int(old["createdAt"])
    except (ValueError, KeyError, TypeError):  # none yet, or not one MLflow could read
        pass
    # the envelope of MLflow 3.17's saved views: the view's state is a JSON string inside it
    envelope = {"name": STUDY_VIEW_NAME, "createdAt": created or now, "updatedAt": now,
                "state": json.dumps(study_view_state())}
    mlflow.MlflowClient().set_experiment_tag(exp_id, key, json.dumps(envelope))
    return STUDY_VIEW


def runs_table_url(host: str, port: int) -> str:
    """The MLflow UI's runs table of the experiment, opened on the study view."""
    exp_id = experiment_id()
    # workflowType: the sidebar of model training, not of GenAI (MLflow 3 defaults to GenAI, per browser)
    return (f"http://{host}:{port}/#/experiments/{exp_id}/runs?viewStateShareKey={save_study_view(exp_id)}"
            "&workflowType=machine_learning")
