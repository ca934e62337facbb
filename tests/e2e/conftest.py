import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, timeout: int = 1800, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="session")
def clone(tmp_path_factory) -> Path:
    """A fresh copy of the working tree (what git would clone, uncommitted edits included)."""
    dst = tmp_path_factory.mktemp("clone") / "dermsynth"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    run(["git", "init", "-q"], dst)
    run(["dvc", "pull", "-q", "data.dvc"], dst)
    return dst


@pytest.fixture(scope="session")
def repro(clone) -> subprocess.CompletedProcess:
    """`dvc repro` of the whole demo pipeline in the fresh copy, once per session."""
    return run(["dvc", "repro"], clone, timeout=3600)
