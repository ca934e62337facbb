"""Everything that logs to or reads MLflow works unchanged against a real tracking server
(`MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`, sqlite backend, artifacts served by the server)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dermsynth import tracking
from dermsynth.audit.app import port_free, wait_until_serving
from dermsynth.classify.metrics import METRICS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    port = _free_port()
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


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, zombies (state Z, already stopped) included."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        out[int(stat.parent.name)] = (int(ppid), state)
    return out


def _descendants(pid: int) -> set[int]:
    procs, found, todo = _processes(), set(), [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, (ppid, _) in procs.items() if ppid == parent} - found
        found |= children
        todo += children
    return found


def _running(pids: set[int]) -> set[int]:
    procs = _processes()
    return {p for p in pids if p in procs and procs[p][1] != "Z"}


def test_sigterm_stops_dermsynth_mlflow_and_its_whole_server(tmp_path):
    """SIGTERM to `dermsynth mlflow` (a service manager, `kill`, a closing IDE) stops the server it
    started, as Ctrl-C does: uvicorn, the job runner and its huey consumers, and frees the port."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a repository: its store is tmp_path/mlflow.db
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_TRACKING_URI")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dermsynth"), "mlflow", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    server: set[int] = set()
    try:
        assert wait_until_serving(port, 180), "dermsynth mlflow did not start"
        server = _descendants(proc.pid)
        assert len(_running(server)) >= 2  # mlflow ui and the uvicorn it runs, at least
        proc.send_signal(signal.SIGTERM)  # to the dermsynth process only, as `kill PID` does
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_running(server) or not port_free(port)):
            time.sleep(0.2)
        assert _running(server) == set(), "server processes left running"
        assert port_free(port), f"port {port} still served"
    finally:  # whatever a failure left behind, so that it cannot hold the port for the next test
        if proc.poll() is None:
            server |= _descendants(proc.pid)
            proc.kill()
        for pid in _running(server):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
