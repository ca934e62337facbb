"""benchmarks/gpu_check.py runs its every code path on the CPU at tiny size, so it is ready for a GPU window."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dermsynth.config import offline_environment

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
ROWS = ["generate_b1_dermsynth", "generate_b1_diffusers", "generate_b8_dermsynth", "generate_b8_diffusers",
        "determinism", "lora_train", "lora_train_peak_memory", "classifier_train", "ddp_smoke"]


def _run(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **offline_environment(), **(env_extra or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_cpu_tiny_table(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run(["--cpu", "--tiny", "--json", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu-tiny" and report["exit_code"] == 0
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ROWS
    for name, r in rows.items():
        assert r["status"] in ("ok", "identical"), (name, r)
        assert r["settings"] and r["unit"], (name, r)
        assert isinstance(r["value"], (int, float)) and math.isfinite(r["value"]) and r["value"] > 0, (name, r)
    for b in (1, 8):
        ratio = rows[f"generate_b{b}_dermsynth"]["ratio"]
        assert math.isfinite(ratio) and ratio > 0
        expected = rows[f"generate_b{b}_dermsynth"]["value"] / rows[f"generate_b{b}_diffusers"]["value"]
        assert ratio == pytest.approx(expected)
        assert f"batch {b}" in rows[f"generate_b{b}_dermsynth"]["settings"]
    assert rows["determinism"]["status"] == "identical"
    assert rows["ddp_smoke"]["status"] == "ok" and "gloo" in rows["ddp_smoke"]["settings"]
    assert "float32" in rows["generate_b1_dermsynth"]["settings"]  # fp16 becomes fp32 on the CPU
    # the printed table carries every row too
    for name in ROWS:
        assert name in proc.stdout


def test_without_cuda_every_row_says_why(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run(["--json", str(out)], {"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"] for r in rows] == ROWS
    assert all(r["status"] == "skipped" and "no CUDA" in r["note"] for r in rows)
