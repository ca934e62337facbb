"""The MLflow saved view `dermsynth mlflow` opens the runs table on (no browser needed here; the UI
drawing it is checked in test_screens_offline.py)."""
import json

import pytest

from dermsynth import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)  # not the URI an earlier test left set in mlflow


def _tag(client) -> dict:
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return json.loads(exp.tags[tracking.VIEW_TAG_PREFIX + tracking.STUDY_VIEW])


def test_the_link_opens_the_study_view_stored_in_the_experiment(store):
    url = tracking.runs_table_url("127.0.0.1", 5000)
    exp_id = tracking.experiment_id()
    assert url == (f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?viewStateShareKey={tracking.STUDY_VIEW}"
                   "&workflowType=machine_learning")
    envelope = _tag(store)
    # MLflow 3.17's saved-view envelope: a named view with millisecond times and its state as a JSON string
    assert envelope["name"] == tracking.STUDY_VIEW_NAME and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["selectedColumns"] == ["params.`model`", "params.`ratio`", "params.`seed`", "metrics.`isic_auc`",
                                        "metrics.`ham10000_auc`", "metrics.`isic_balanced_accuracy`",
                                        "metrics.`ham10000_balanced_accuracy`"]
    assert state["columnOrder"][0] == "attributes.`Run Name`" and state["columnOrder"][-7:] == state["selectedColumns"]
    assert set(state["columnOrder"]) == set(state["columnWidths"])  # MLflow applies widths by the order's columns


def test_the_view_is_written_once_and_restored_when_changed(store):
    tracking.save_study_view()
    first = _tag(store)
    tracking.save_study_view()
    assert _tag(store) == first  # unchanged: not rewritten
    exp_id = tracking.experiment_id()
    key = tracking.VIEW_TAG_PREFIX + tracking.STUDY_VIEW
    store.set_experiment_tag(exp_id, key, json.dumps(first | {"state": json.dumps({"selectedColumns": []})}))
    tracking.save_study_view()
    again = _tag(store)
    assert json.loads(again["state"]) == tracking.study_view_state() and again["createdAt"] == first["createdAt"]
    store.set_experiment_tag(exp_id, key, "not json")
    tracking.save_study_view()
    assert json.loads(_tag(store)["state"]) == tracking.study_view_state()
