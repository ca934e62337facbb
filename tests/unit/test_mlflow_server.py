"""Everything that logs to or reads MLflow works unchanged against a real tracking server
(`MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`, sqlite backend, artifacts served by the server)."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from dermsynth import tracking
from dermsynth.audit.app import wait_until_serving
from dermsynth.classify.metrics import METRICS


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "store")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until_serving(port, 120), "mlflow server did not start"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))  # nothing may land beside the repository
        yield tmp_path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_train_evaluate_and_report_through_a_tracking_server(mlflow_server, tmp_path):
    from dermsynth.report import write_report

    rng = np.random.default_rng(0)
    for ratio in (0.0, 0.5):
        for seed in (1, 2, 3):
            model = tmp_path / f"clf-{ratio}-{seed}"
            model.mkdir()
            (model / "model.safetensors").write_bytes(f"weights {ratio} {seed}".encode())
            # the train stage: params and the model's digest; evaluate finds the run again by that digest
            with tracking.start_run(f"m ratio={ratio} seed={seed}", {"ratio": ratio, "model": "m", "seed": seed,
                                                                      "data_seed": 42, "real_fraction": 1.0,
                                                                      "synthetic_class_mix": "match_real"}) as (m, _):
                m.set_tag(tracking.MODEL_TAG, tracking.model_digest(model))
            run_id = tracking.find_model_run(model)
            assert run_id is not None
            with tracking.start_run("", {}, run_id=run_id) as (m, _):
                m.log_metrics({f"isic_{k}": (0.14 if k == "pauc80" else 0.7) + 0.1 * ratio + rng.normal(0, 0.01)
                               for k in METRICS})
                (tmp_path / "metrics.json").write_text(json.dumps({"ratio": ratio}))
                m.log_artifact(str(tmp_path / "metrics.json"))
    runs = tracking.runs()
    assert len(runs) == 6 and "m ratio=0.5 seed=3" in set(runs["tags.mlflow.runName"])
    assert len(list((tmp_path / "store").rglob("metrics.json"))) == 6  # artifacts went through the server
    assert not (tmp_path / "repo").exists()  # no local mlflow.db or mlruns/ beside the repository
    s = write_report(runs, tmp_path / "rep")
    auc = s[(s.metric == "auc") & (s.ratio == 0.5)].iloc[0]
    assert auc.replicates == 3 and auc.delta == pytest.approx(0.05, abs=0.03)  # 0.1 x ratio
