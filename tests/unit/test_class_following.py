"""Generation follows its class: the classification accuracy score (train on synthetic, test on real)
of images drawn for each class, and of images drawn with the two classes' prompts and LoRAs swapped.

A tiny model learns two classes of phantoms (dermsynth.demo.phantom) from captions and one LoRA each,
then draws both classes through the generate stage's own plan and renderer. If generation ignored the
class (its prompt word or its LoRA), both scores would sit near 0.5 and this test fails.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dermsynth.audit.tstr import fit_and_score
from dermsynth.demo.phantom import STYLES, render, sample_lesion
from dermsynth.diffusion.data import load_images
from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
from dermsynth.diffusion.plan import GenerateConfig, plan
from dermsynth.diffusion.pretrain import PretrainConfig, pretrain_unet, pretrain_vae
from dermsynth.diffusion.sample import prepare_pipeline, render_chunk
from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline
from dermsynth.traits import captions

SIZE = 32
CLASSES = ("benign", "malignant")
PROMPT = "a dermoscopic image of sks {label} lesion"


def _lesion(label: str, rng: np.random.Generator):
    """A phantom lesion that looks its class (latent score beyond +-1): a small model learns it in a minute."""
    while True:
        lesion = sample_lesion(label, rng)
        if lesion.score * (1 if label == "malignant" else -1) > 1.0:
            return lesion


def _phantoms(root, n: int, seed: int, split: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2 * n):
        label = CLASSES[i % 2]
        path = f"{split}/{label}_{i:03d}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render(_lesion(label, rng), STYLES["ham10000"], SIZE, SIZE, rng)).save(root / path)
        rows.append({"path": path, "label": label})
    return pd.DataFrame(rows)


def _features(images: np.ndarray) -> np.ndarray:
    """Fixed features a lesion's class shows in: the image at 8 x 8, per channel."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0
    return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1).numpy()


def _draw(root, rows: pd.DataFrame) -> np.ndarray:
    """The plan's rows rendered chunk by chunk, as the generate stage does."""
    cfg = GenerateConfig(threads=2)
    out = {}
    for lora, part in rows.groupby("lora"):
        pipe = prepare_pipeline(root / "base", root / lora, cfg)
        base_sched = dict(pipe.scheduler.config)
        for _, chunk in part.groupby("chunk"):
            images, _ = render_chunk(pipe, chunk, base_sched)
            out.update(zip(chunk.image_id, images))
    return np.stack([out[i] for i in rows.image_id])


@pytest.mark.slow
def test_generation_follows_the_class_and_a_swap_inverts_it(tmp_path):
    torch.manual_seed(0)
    train = _phantoms(tmp_path, 60, seed=1, split="train")
    test = _phantoms(tmp_path, 60, seed=2, split="test")
    test_x = _features(np.stack([np.asarray(Image.open(tmp_path / p)) for p in test.path]))
    train_x = _features(np.stack([np.asarray(Image.open(tmp_path / p)) for p in train.path]))
    trtr, _, _ = fit_and_score(train_x, train.label.to_numpy(), test_x, test.label.to_numpy(), 0)

    pipe = build_tiny_pipeline(TinyConfig(image_size=SIZE, vae_channels=(16, 32, 64)))
    images = load_images(train.path, tmp_path)
    cfg = PretrainConfig(vae_steps=200, unet_steps=800, batch_size=16, vae_crop=0,
                         caption="a dermoscopic image of a {label} skin lesion")
    pretrain_vae(pipe, images, cfg)
    pretrain_unet(pipe, images, cfg, captions(cfg.caption, train))
    pipe.save_pretrained(tmp_path / "base", safe_serialization=True)
    lora_cfg = LoraTrainConfig(max_steps=60, batch_size=8, learning_rate=1e-4, rank=4, alpha=8,
                               checkpoint_every=60, validation_images=0, instance_prompt=PROMPT)
    for label in CLASSES:
        paths = train.path[train.label == label].tolist()
        train_lora(tmp_path / "base", paths, label, tmp_path / "lora" / label, tmp_path / "work", lora_cfg,
                   repo_root=tmp_path)

    gen = GenerateConfig(n_per_class=60, batch_size=60, steps_min=20, steps_max=20, samplers=("euler",), seed=3)
    rows = plan(gen, "base", {c: f"lora/{c}" for c in CLASSES}, "syn")
    swap = dict(zip(CLASSES, reversed(CLASSES)))
    swapped = rows.assign(prompt=[PROMPT.format(label=swap[c]) for c in rows.label],
                          lora=[f"lora/{swap[c]}" for c in rows.label])
    scores = {}
    for name, r in (("as asked", rows), ("swapped", swapped)):
        auc, _, _ = fit_and_score(_features(_draw(tmp_path, r)), r.label.to_numpy(), test_x, test.label.to_numpy(), 0)
        scores[name] = auc
    assert trtr > 0.8, (trtr, scores)  # the phantoms' classes are visible in these features
    assert scores["as asked"] >= 0.75 and scores["swapped"] < 0.5, (scores, trtr)
