"""`dvc repro` on the embedded demo, in a fresh copy of the repository."""
import json
import time

import pandas as pd
import pytest

from tests.e2e.conftest import run

pytestmark = pytest.mark.slow


def test_raw_data_restored_exactly(clone):
    out = run(["dvc", "status", "data.dvc"], clone).stdout
    assert "up to date" in out.lower(), out


def test_repro_builds_the_data_stages(clone, repro):
    m = pd.read_csv(clone / "data/prepared/manifest.csv", keep_default_na=False)
    assert len(m) > 300 and set(m.split) == {"train", "val", "test"}
    assert all((clone / p).is_file() for p in m.path)
    q = pd.read_csv(clone / "reports/quarantine.csv")
    assert len(q) == 12 and set(q.columns) >= {"source", "image_id", "reason"}
    for suite in ("raw", "prepared"):
        assert json.loads((clone / f"reports/quality/{suite}.json").read_text())["success"]
    assert (clone / "reports/preprocess/examples.png").stat().st_size > 10_000


def test_second_repro_does_nothing(clone, repro):
    t = time.perf_counter()
    out = run(["dvc", "repro"], clone).stdout
    elapsed = time.perf_counter() - t
    assert "Running stage" not in out and "up to date" in out.lower(), out
    print(f"second dvc repro took {elapsed:.1f}s")


def test_failed_gate_stops_repro(clone, repro, tmp_path):
    """A quality parameter no data can meet: the gate stage fails and names the expectation."""
    params = (clone / "params.yaml").read_text()
    try:
        (clone / "params.yaml").write_text(params.replace("min_minority_fraction: 0.1", "min_minority_fraction: 0.45"))
        p = run(["dvc", "repro", "quality_prepared"], clone, check=False)
        assert p.returncode != 0
        assert "quality gate 'prepared' failed" in p.stderr + p.stdout
        assert "minority_fraction" in p.stderr + p.stdout
    finally:
        (clone / "params.yaml").write_text(params)
        run(["dvc", "repro"], clone)
