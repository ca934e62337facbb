"""Generation and LoRA training under `accelerate launch` with 2 CPU processes (gloo)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import sys
from pathlib import Path
from accelerate import PartialState
from dermsynth.diffusion.sample import GenerateConfig, generate
from dermsynth.diffusion.lora import LoraTrainConfig, train_lora

root, what = Path(sys.argv[1]), sys.argv[2]
state = PartialState(cpu=True)
if what == "generate":
    cfg = GenerateConfig(n_per_class=6, batch_size=2, steps_min=3, steps_max=4, threads=1, seed=1)
    loras = {c: f"models/lora/{c}" for c in cfg.classes}
    generate(cfg, "models/base", loras, root / "syn_2p", root / ".work-syn_2p", repo_root=root, state=state)
    print(f"world {state.num_processes}")
else:
    paths = sys.argv[3].split(",")
    cfg = LoraTrainConfig(max_steps=2, batch_size=2, checkpoint_every=2, rank=4, alpha=8)
    res = train_lora(root / "models/base", paths, "malignant", root / "lora_2p", root / ".work-lora2p", cfg,
                     repo_root=sys.argv[4])
    # what stages/train_lora.py reads right after: the LoRA must be there on every rank
    assert (root / "lora_2p" / "pytorch_lora_weights.safetensors").is_file(), state.process_index
    print(f"rank {state.process_index} main={res.is_main}")
'''


def _launch(tmp_path, *args) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    p = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script),
                        *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_two_process_generation_is_byte_identical_to_one(gen_repo, tmp_path):
    from tests.unit.test_diffusion import _gen

    _gen(gen_repo, "syn_1p", batch_size=2)
    p = _launch(tmp_path, gen_repo, "generate")
    assert "world 2" in p.stdout  # really two processes
    one = pd.read_csv(gen_repo / "syn_1p" / "metadata.csv")
    two = pd.read_csv(gen_repo / "syn_2p" / "metadata.csv")
    assert len(one) == len(two) == 12
    assert one.drop(columns="path").equals(two.drop(columns="path"))  # written once, by the main process
    for a, b in zip(one.path, two.path):
        assert np.array_equal(np.asarray(Image.open(gen_repo / a)), np.asarray(Image.open(gen_repo / b)))


def test_two_process_lora_exports_once_before_any_rank_reads_it(gen_repo, instance_images, tmp_path):
    root, paths = instance_images
    p = _launch(tmp_path, gen_repo, "lora", ",".join(paths), root)
    ranks = sorted(line for line in p.stdout.splitlines() if line.startswith("rank "))
    assert ranks == ["rank 0 main=True", "rank 1 main=False"], p.stdout[-2000:] + p.stderr[-3000:]
    assert len(list((gen_repo / "lora_2p").glob("*.safetensors"))) == 1
