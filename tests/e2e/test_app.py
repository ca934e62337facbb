"""`dermsynth app` serves real and synthetic samples, and stops with nothing left behind."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dermsynth.audit.app import port_free

pytestmark = pytest.mark.slow


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(f"{p.name}: {cmd[:200]}")
    return found


def _graphql(port: int, query: str, variables: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps(
        {"query": query, "variables": variables}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _free_port() -> int:
    for port in range(5180, 5280):
        if port_free(port):
            return port
    raise RuntimeError("no free port")


def test_app_serves_dataset_and_stops_cleanly(clone, repro, tmp_path):
    db_dir = str(tmp_path / "fo-db")  # a database of its own: the app must build the dataset itself
    port = _free_port()
    env = dict(os.environ, FIFTYONE_DATABASE_DIR=db_dir, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.Popen(["dermsynth", "app", "--port", str(port)], cwd=clone, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    try:
        t0 = time.time()
        while not any("serving" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "app exited:\n" + "".join(lines)
            lines.append(line)
            assert time.time() - t0 < 600, "app did not start:\n" + "".join(lines)
        # what the App's own server reports: samples per origin (real / synthetic) of the dataset
        query = ('query { aggregate(datasetName: "dermsynth", view: [], aggregations: [{countValues: {field: "origin"}}])'
                 " { ... on StrCountValuesResponse { values { key value } } } }")
        counts = {}
        for _ in range(30):  # the server answers a few seconds after the session starts
            try:
                answer = _graphql(port, query, {})
                counts = {v["key"]: v["value"] for v in answer["data"]["aggregate"][0]["values"]}
                break
            except OSError:
                time.sleep(1)
        assert counts["real"] > 300 and counts["synthetic"] > 300, counts
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    deadline = time.time() + 30
    while time.time() < deadline and (_processes_mentioning(db_dir) or not port_free(port)):
        time.sleep(1)
    assert _processes_mentioning(db_dir) == [], "database left running"
    assert port_free(port), "App server left running"
    assert proc.returncode == 0
