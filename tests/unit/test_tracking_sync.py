"""The MLflow record made whole from the DVC outputs: one complete run per condition, whether the run
that trained the model is in this store or not, and never a second one."""
import json

import pandas as pd
import pytest

from dermsynth import tracking
from dermsynth.classify.metrics import METRICS

TEST_METRICS = {f"{ts}_{k}": 0.5 + i / 100 for i, (ts, k) in
                enumerate((ts, k) for ts in ("isic", "ham10000") for k in METRICS)}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return tmp_path


def _outputs(root, ratio: float = 0.5, weights: bytes = b"weights"):
    """A classifier's DVC outputs as the train and evaluate stages write them."""
    model = root / f"model-{ratio}"
    model.mkdir()
    (model / "model.safetensors").write_bytes(weights)
    params = {"model": "resnet18", "ratio": ratio, "seed": 1, "filter_policy": "combined", "counts": {"n_train": 10}}
    (model / tracking.RUN_FILE).write_text(json.dumps({"name": f"resnet18 ratio={ratio}", "params": params}))
    pd.DataFrame({"epoch": [1, 2], "train_loss": [0.7, 0.6], "val_auc": [0.6, 0.7]}).to_csv(model / "history.csv",
                                                                                          index=False)
    (model / "summary.json").write_text(json.dumps({"best_epoch": 2, "best_val_auc": 0.7, "n_train": 10}))
    art = root / f"metrics-{ratio}.json"
    art.write_text(json.dumps(TEST_METRICS))
    return model, [art]


def _runs():
    return tracking.runs()


def test_a_store_without_the_training_run_gets_it_whole_from_the_outputs(store):
    model, arts = _outputs(store)
    run_id, made = tracking.complete_run(model, TEST_METRICS, arts)
    assert made
    r = _runs()
    assert len(r) == 1 and r.run_id[0] == run_id
    row = r.iloc[0]
    assert all(row[f"metrics.{k}"] == v for k, v in TEST_METRICS.items())
    assert row["params.ratio"] == "0.5" and row["params.counts.n_train"] == "10" and row["metrics.best_val_auc"] == 0.7
    history = tracking._mlflow().MlflowClient().get_metric_history(run_id, "val_auc")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.7)]
    assert row["tags.dermsynth.logged_from"] == "dvc outputs"
    # again, as `dvc repro` on a checkout without the marker would: no second run
    assert tracking.complete_run(model, TEST_METRICS, arts) == (run_id, False)
    assert len(_runs()) == 1


def test_the_run_that_trained_the_model_is_completed_not_duplicated(store):
    model, arts = _outputs(store)
    with tracking.start_run("resnet18 ratio=0.5", {"ratio": 0.5}) as (mlflow, active):
        mlflow.set_tags({tracking.CONDITION_TAG: tracking.condition_key(model)})
        trained = active.info.run_id
    assert tracking.complete_run(model, TEST_METRICS, arts) == (trained, False)
    r = _runs()
    assert len(r) == 1 and r.iloc[0]["metrics.isic_auc"] == TEST_METRICS["isic_auc"]


def test_same_weights_under_other_params_are_another_run(store):
    """Ratio 0 under two filter settings trains the same weights: two conditions, two runs."""
    a, arts = _outputs(store, ratio=0.0)
    b = store / "model-b"
    b.mkdir()
    for f in a.iterdir():
        (b / f.name).write_bytes(f.read_bytes())
    run = json.loads((b / tracking.RUN_FILE).read_text())
    run["params"]["filter_policy"] = "none"
    (b / tracking.RUN_FILE).write_text(json.dumps(run))
    ids = {tracking.complete_run(m, TEST_METRICS, arts)[0] for m in (a, b)}
    assert len(ids) == 2 and len(_runs()) == 2
