"""An S3-compatible DVC remote: push the demo's data, models and synthetic set with the run cache to a
local S3 API (moto's server on 127.0.0.1), pull them into a fresh clone, and `dvc repro` only logs the MLflow
runs the fresh clone lacks."""
import re
import subprocess

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from tests.e2e.conftest import run

pytestmark = pytest.mark.slow
BUCKET = "dermsynth-dvc"


@pytest.fixture()
def s3_endpoint(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)  # what the DVC subprocesses read, as they would read a user's credentials
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def _add_remote(repo, url):
    # --local: the endpoint belongs to this machine's set-up, not to the repository's history
    run(["dvc", "remote", "add", "--local", "-f", "s3", f"s3://{BUCKET}/store"], repo)
    run(["dvc", "remote", "modify", "--local", "s3", "endpointurl", url], repo)


def test_push_then_fresh_clone_pulls_everything_and_repro_only_tracks(clone, repro, s3_endpoint, tmp_path):
    run(["git", "checkout", "params.yaml"], clone)  # experiments run in the workspace leave their params there
    run(["dvc", "repro"], clone)
    run(["git", "add", "-A"], clone)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "pushed", "--allow-empty"],
        clone)
    _add_remote(clone, s3_endpoint)
    run(["dvc", "push", "-r", "s3", "--run-cache"], clone, timeout=1200)
    objects = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="store/")
    assert objects["KeyCount"] > 100, objects["KeyCount"]  # data, models, synthetic images, run cache

    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(clone), str(fresh)], check=True)
    _add_remote(fresh, s3_endpoint)
    run(["dvc", "pull", "-r", "s3", "--run-cache"], fresh, timeout=1200)
    for path in ("data/raw", "data/prepared/manifest.csv", "models/base/model_index.json",
                 "models/lora/malignant/pytorch_lora_weights.safetensors", "data/synthetic/metadata.csv"):
        assert (fresh / path).exists(), path
    # a fresh clone has no MLflow store: only track@<model> runs, logging each model's run from the pulled
    # outputs (nothing trains or evaluates again); then nothing is left to do and git stays clean
    out = run(["dvc", "repro"], fresh).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    models = yaml.safe_load((fresh / "params.yaml").read_text())["train"]["models"]
    assert ran == {f"track@{m}" for m in models}, out
    again = run(["dvc", "repro"], fresh).stdout
    assert "Running stage" not in again and "up to date" in again.lower(), again
    assert run(["git", "status", "--porcelain"], fresh).stdout == ""
