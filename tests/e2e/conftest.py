import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# The end-to-end run uses the demo at reduced effort so the whole suite fits CI's budget: the same
# stages and code paths, fewer steps and images. The full-size demo is `make run`.
CI_PARAMS = {
    ("base_model", "pretrain", "vae_steps"): 100,
    ("base_model", "pretrain", "unet_steps"): 300,
    ("base_model", "tiny", "vae_channels"): [16, 32, 64, 64],  # 8x8 latents: half the UNet's cost (and no class)
    ("lora", "max_steps"): 60,
    ("lora", "checkpoint_every"): 30,
    ("generate", "n_per_class"): 300,
    ("train", "epochs"): 4,
    ("evaluate", "bootstrap"): 200,
    ("audit", "feature_epochs"): 4,
}


def run(cmd: list[str], cwd: Path, timeout: int = 1800, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("MLFLOW_TRACKING_URI", None)
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="session")
def clone(tmp_path_factory) -> Path:
    """A fresh copy of the working tree (what git would clone, uncommitted edits included), committed."""
    dst = tmp_path_factory.mktemp("clone") / "dermsynth"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for keys, value in CI_PARAMS.items():
        block = params
        for k in keys[:-1]:
            block = block[k]
        block[keys[-1]] = value
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "clone"], dst)
    run(["dvc", "pull", "-q", "data.dvc"], dst)
    return dst


@pytest.fixture(scope="session")
def repro(clone) -> subprocess.CompletedProcess:
    """`dvc repro` of the whole demo pipeline in the fresh copy, once per session."""
    return run(["dvc", "repro"], clone, timeout=3600)
