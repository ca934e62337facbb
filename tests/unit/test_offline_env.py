"""One list of offline, no-telemetry settings (`dermsynth/offline.env`): the Makefile exports it and
every stage sets it, so neither can drift from the other."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dermsynth import config

ROOT = Path(__file__).resolve().parents[2]
PRINT_ENV = "_print_env:\n\t@env\n"


def test_make_exports_exactly_the_offline_list() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make here")
    clean = {k: v for k, v in os.environ.items() if k not in config.offline_environment()}
    out = subprocess.run(["make", "-s", "-f", "Makefile", "-f", "-", "_print_env"], cwd=ROOT, env=clean,
                         input=PRINT_ENV, capture_output=True, text=True, check=True).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    expected = config.offline_environment()
    assert len(expected) >= 8
    assert {k: seen.get(k) for k in expected} == expected


def test_every_stage_sets_the_offline_list_without_overriding_a_user_value(monkeypatch) -> None:
    for key in config.offline_environment():
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a user who has a hub mirror keeps their choice
    config.configure_environment()
    expected = config.offline_environment() | {"HF_HUB_OFFLINE": "0"}
    assert {k: os.environ[k] for k in expected} == expected
