"""`kill -9` in the middle of LoRA training or generation, then re-run: the same result."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
from dermsynth.diffusion.lora_files import LORA_WEIGHTS
from dermsynth.diffusion.sample import GenerateConfig, generate

pytestmark = pytest.mark.slow
LORA = dict(max_steps=200, batch_size=4, learning_rate=1e-3, checkpoint_every=10, rank=4, alpha=8, keep_checkpoints=2)


def _spawn(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code.format(**kw)], cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"child ended before the kill: {proc.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("child made no progress")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture()
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the child runs with 1 thread too: same kernels, same bits
    yield
    torch.set_num_threads(n)


def test_lora_sigkill_then_resume_equals_uninterrupted(tiny_base, instance_images, tmp_path, one_thread):
    root, paths = instance_images
    cfg = LoraTrainConfig(**LORA)
    child = _spawn(
        "import torch, json; torch.set_num_threads(1)\n"
        "from dermsynth.diffusion.lora import LoraTrainConfig, train_lora\n"
        "train_lora({base!r}, json.loads({paths!r}), 'malignant', {out!r}, {work!r}, LoraTrainConfig(**json.loads({cfg!r})),"
        " repo_root={root!r})",
        base=str(tiny_base), paths=json.dumps(paths), out=str(tmp_path / "killed"), work=str(tmp_path / "work"),
        cfg=json.dumps(LORA), root=str(root))
    _kill_when(child, lambda: any((tmp_path / "work").glob("*/checkpoint-30/state.json")))
    assert not (tmp_path / "killed" / LORA_WEIGHTS).exists()
    resumed = train_lora(tiny_base, paths, "malignant", tmp_path / "killed", tmp_path / "work", cfg, repo_root=root)
    assert 30 <= resumed.resumed_from < 200
    full = train_lora(tiny_base, paths, "malignant", tmp_path / "full", tmp_path / "work_full", cfg, repo_root=root)
    assert resumed.losses == full.losses
    with safe_open(tmp_path / "killed" / LORA_WEIGHTS, "pt") as a, safe_open(tmp_path / "full" / LORA_WEIGHTS, "pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())  # bit-identical on CPU


def test_generation_sigkill_then_resume_equals_uninterrupted(gen_repo, tmp_path):
    cfg = dict(n_per_class=40, batch_size=4, steps_min=3, steps_max=4, threads=1, seed=2)
    code = ("from dermsynth.diffusion.sample import GenerateConfig, generate\n"
            "generate(GenerateConfig(**{cfg!r}), 'models/base', {{c: 'models/lora/' + c for c in ('benign', 'malignant')}},"
            " {out!r}, {work!r}, repo_root={root!r})")
    child = _spawn(code, cfg=cfg, out=str(gen_repo / "killed"), work=str(tmp_path / "work"), root=str(gen_repo))
    _kill_when(child, lambda: len(list((tmp_path / "work").glob("*/images/*/*.png"))) >= 12)
    assert not (gen_repo / "killed" / "metadata.csv").exists()
    done_before = len(list((tmp_path / "work").glob("*/images/*/*.png")))
    summary = generate(GenerateConfig(**cfg), "models/base", {c: f"models/lora/{c}" for c in ("benign", "malignant")},
                       gen_repo / "killed", tmp_path / "work", repo_root=gen_repo)
    assert summary["timings"]["generated_now"] <= 80 - done_before + 4  # at most one chunk redone
    generate(GenerateConfig(**cfg), "models/base", {c: f"models/lora/{c}" for c in ("benign", "malignant")},
             gen_repo / "full", tmp_path / "work_full", repo_root=gen_repo)
    killed = sorted((gen_repo / "killed" / "images").rglob("*.png"))
    full = sorted((gen_repo / "full" / "images").rglob("*.png"))
    assert len(killed) == len(full) == 80
    for a, b in zip(killed, full):
        assert a.name == b.name and np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
