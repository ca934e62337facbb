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
# each rank says what it did in its own file: two processes printing to one pipe can interleave their lines
said = Path(sys.argv[0]).with_name(f"rank{state.process_index}.txt")
if what == "train":
    import json
    import pandas as pd
    from dermsynth.classify.train import TrainConfig, train_classifier
    cfg = TrainConfig(**json.loads(sys.argv[3]))
    tables = [pd.read_csv(root / f"{s}.csv", keep_default_na=False) for s in ("train", "val")]
    summary = train_classifier(*tables, cfg, root / "clf_2p", root=sys.argv[4], state=state,
                               on_epoch=lambda epoch, row: print(f"epoch {epoch} logged by rank {state.process_index}"))
    said.write_text(f"rank {state.process_index} " + json.dumps(summary))
elif what == "generate":
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
    said.write_text(f"rank {state.process_index} main={res.is_main}")
'''


def _launch(tmp_path, *args) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    p = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script),
                        *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if p.returncode:  # the failing rank's own traceback first: the launcher's summary only says it died
        (tmp_path / "stderr.txt").write_text(p.stderr)
        pytest.fail(p.stderr[:6000] + "\n...\n" + p.stderr[-2000:])
    return p


def _said(tmp_path) -> list[str]:
    """What each rank wrote to its own file, in rank order."""
    return [f.read_text() for f in sorted(tmp_path.glob("rank*.txt"))]


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


# no augmentation and no dropout: then one process and two with the same global batch do the same sums
EXACT = dict(model="vit_tiny_patch16_224", img_size=32, epochs=3, batch_size=8, hflip=0.0, vflip=0.0, color_jitter=0.0,
             scale_min=1.0, drop_rate=0.0, early_stopping_patience=10, threads=2, seed=3, lr=1e-3)
EXACT_LR = EXACT["lr"]


def test_two_process_classifier_matches_one_process_with_the_same_global_batch(prepared_session, tmp_path):
    import json

    import torch
    from safetensors.torch import load_file

    from dermsynth.classify.train import TrainConfig, train_classifier

    root, m = prepared_session
    for split in ("train", "val"):
        m[m.split == split].to_csv(tmp_path / f"{split}.csv", index=False)
    one = train_classifier(m[m.split == "train"], m[m.split == "val"], TrainConfig(**EXACT), tmp_path / "clf_1p",
                           root=root)
    p = _launch(tmp_path, tmp_path, "train", json.dumps(EXACT), root)
    assert sorted(line for line in p.stdout.splitlines() if line.startswith("epoch ")) == [
        f"epoch {e} logged by rank 0" for e in (1, 2, 3)]  # one logger: the main process
    assert [s.split()[:2] for s in _said(tmp_path)] == [["rank", "0"], ["rank", "1"]]
    w1, w2 = load_file(tmp_path / "clf_1p/model.safetensors"), load_file(tmp_path / "clf_2p/model.safetensors")
    diff = torch.cat([(w1[k] - w2[k]).abs().flatten() for k in w1])
    # float sums in another order, nothing more: the bulk of the weights agree to 1e-6. AdamW divides by
    # sqrt(v), so a coordinate whose gradient is ~0 can turn float noise into a step of up to lr; a few do
    # (170 of 5.5M, 2e-4 at lr 1e-3), so the worst is bounded by one step, not by float precision.
    assert float(diff.kthvalue(int(0.999 * diff.numel())).values) < 1e-6
    assert float((diff > 1e-5).float().mean()) < 1e-3 and float(diff.max()) < EXACT_LR, float(diff.max())
    h1, h2 = (pd.read_csv(tmp_path / d / "history.csv") for d in ("clf_1p", "clf_2p"))
    assert np.allclose(h1.train_loss, h2.train_loss, atol=1e-5) and np.allclose(h1.val_auc, h2.val_auc, atol=1e-6)
    assert one["best_epoch"] == int(h2.val_auc.idxmax()) + 1


def test_two_process_lora_exports_once_before_any_rank_reads_it(gen_repo, instance_images, tmp_path):
    root, paths = instance_images
    p = _launch(tmp_path, gen_repo, "lora", ",".join(paths), root)
    assert _said(tmp_path) == ["rank 0 main=True", "rank 1 main=False"], p.stdout[-2000:] + p.stderr[-3000:]
    assert len(list((gen_repo / "lora_2p").glob("*.safetensors"))) == 1


def test_train_stage_with_two_processes_logs_one_mlflow_run(prepared_session, tmp_path, monkeypatch):
    """`train.processes: 2`: the stage relaunches itself under `accelerate launch`; one model file, one
    MLflow run with every epoch, from the main process."""
    import os

    import yaml

    from dermsynth import tracking
    from dermsynth.paths import mark_output_dir

    root, m = prepared_session
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/images").symlink_to(root / "data/prepared/images")
    m.to_csv(tmp_path / "data/prepared/manifest.csv", index=False)
    (tmp_path / "data/prepared/config.json").write_text('{"size": 32}')  # as preprocess records it
    (tmp_path / "data/synthetic").mkdir(parents=True)  # stand-ins: real files under synthetic ids
    for d in ("data/prepared", "data/synthetic"):  # made by "the pipeline": the schema lets stages replace them
        mark_output_dir(tmp_path / d)
    syn = m[m.split == "train"].assign(image_id=lambda d: "syn_" + d.image_id)[["image_id", "label", "path"]]
    syn.to_csv(tmp_path / "data/synthetic/metadata.csv", index=False)
    (tmp_path / "data/filter").mkdir(parents=True)  # the filter stage's output: every stand-in kept
    syn.assign(kept=True)[["image_id", "label", "kept"]].to_csv(tmp_path / "data/filter/scores.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(models=["vit_tiny_patch16_224"], overrides={"vit_tiny_patch16_224": {}}, epochs=2,
                           batch_size=8, processes=2, img_size=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(ROOT), DVC_ROOT=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    # as DVC runs them: train_config@ resolves the model's settings, train@ reads them
    for stage in ("stages.train_config", "stages.train"):
        p = subprocess.run([sys.executable, "-m", stage, "--model", "vit_tiny_patch16_224"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("training set (ratio=0.5") == 1 and p.stdout.count("best val AUROC") == 1
    assert "DDP over 2 processes (cpu), global batch 8" in p.stdout
    out = tmp_path / "models/classifiers/vit_tiny_patch16_224"
    assert len(list(out.glob("*.safetensors"))) == 1 and len(pd.read_csv(out / "history.csv")) == 2
    assert (out / tracking.RUN_FILE).is_file()  # what the track stage finds (or logs) this run by
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    runs = tracking.runs()
    assert len(runs) == 1 and runs.iloc[0]["params.processes"] == "2", runs.T
    assert pd.notna(runs.iloc[0]["metrics.best_val_auc"])
