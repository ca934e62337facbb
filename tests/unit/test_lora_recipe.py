"""Derm-T2IM's LoRA recipe: a grouped subsample per class, the text encoder's rate apart, 8-bit AdamW where possible."""
import logging

import pandas as pd
import torch

from dermsynth.diffusion.data import instance_images as take_instances
from dermsynth.diffusion.lora import LoraTrainConfig, train_lora


def _manifest() -> pd.DataFrame:
    # 10 benign lesions photographed 1-4 times each, 3 malignant ones, a validation image
    groups = [g for g, n in enumerate([1, 2, 3, 4, 1, 2, 3, 4, 1, 2]) for _ in range(n)]
    rows = [{"image_id": f"b{i}", "label": "benign", "split": "train", "group": g, "path": f"b{i}.png"}
            for i, g in enumerate(groups)]
    rows += [{"image_id": f"m{i}", "label": "malignant", "split": "train", "group": 100 + i, "path": f"m{i}.png"}
             for i in range(3)]
    rows.append({"image_id": "v", "label": "benign", "split": "val", "group": 200, "path": "v.png"})
    return pd.DataFrame(rows)


def test_the_cap_takes_whole_groups_in_a_seeded_order():
    m = _manifest()
    assert take_instances(m, "benign", 0, 1) == [f"b{i}" + ".png" for i in range(23)]  # 0: every training image
    picked = take_instances(m, "benign", 10, 1)
    chosen = m[m.path.isin(picked)]
    assert len(picked) <= 10 and len(picked) >= 9  # whole groups fill the cap but never pass it
    # every chosen lesion with all its photographs, none from validation, in manifest order
    assert all((m[(m.group == g) & (m.split == "train")].path.isin(picked)).all() for g in chosen.group.unique())
    assert "v.png" not in picked and picked == sorted(picked, key=lambda p: m.index[m.path == p][0])
    assert take_instances(m, "benign", 10, 1) == picked and take_instances(m, "benign", 10, 2) != picked
    assert take_instances(m, "malignant", 10, 1) == ["m0.png", "m1.png", "m2.png"]  # fewer than the cap: all


def _group_lrs(work) -> list[float]:
    ckpt = sorted(work.glob("*/checkpoint-*"))[-1]
    return [g["lr"] for g in torch.load(ckpt / "optimizer.pt", weights_only=True)["param_groups"]]


def test_text_encoder_rate_apart_and_8bit_fallback(tiny_base, instance_images, tmp_path, caplog):
    root, paths = instance_images
    cfg = LoraTrainConfig(max_steps=2, batch_size=2, rank=4, alpha=4, checkpoint_every=2, lr_warmup_steps=0,
                          train_text_encoder=True, learning_rate=1e-3, text_encoder_lr=2e-6)
    train_lora(tiny_base, paths[:4], "malignant", tmp_path / "out", tmp_path / "work", cfg, repo_root=root)
    assert _group_lrs(tmp_path / "work") == [1e-3, 2e-6]  # UNet adapters, then the text encoder's
    with caplog.at_level(logging.WARNING, logger="dermsynth.diffusion.lora"):
        cfg8 = LoraTrainConfig(max_steps=2, batch_size=2, rank=4, alpha=4, checkpoint_every=2, optimizer="adamw_8bit")
        res = train_lora(tiny_base, paths[:4], "malignant", tmp_path / "out8", tmp_path / "work8", cfg8, repo_root=root)
    if not torch.cuda.is_available():  # here: plain AdamW, said once, and the LoRA trains
        assert [r.message for r in caplog.records].count(
            "lora.optimizer adamw_8bit: bitsandbytes' 8-bit optimizers need CUDA; training with plain AdamW") == 1
    assert res.steps == 2 and all(map(lambda v: v == v, res.losses))


def test_each_image_is_conditioned_on_its_own_caption():
    """Cache row k * n + i is flip k of image i: its encoder states are image i's caption's; prior rows the class prompt's."""
    from dermsynth.diffusion.lora_prompts import instance_prompts

    p = instance_prompts("sks benign", "a lesion", ["b, dark skin", "b, light skin", "b, dark skin"])
    assert p.texts == ["b, dark skin", "b, light skin", "a lesion"] and p.of_image.tolist() == [0, 1, 0]
    cond = torch.arange(3.0)[:, None, None].expand(3, 2, 4)  # one recognisable state per text
    ctx = p.context(torch.tensor([1, 4, 5]), 2, cond, None, torch.zeros(3, 7, dtype=torch.long), torch.float32)
    assert ctx[:, 0, 0].tolist() == [1.0, 1.0, 0.0, 2.0, 2.0]  # rows 1, 4 (= image 1), 5 (= image 2); then class
    fixed = instance_prompts("sks benign", "a lesion", None)
    assert fixed.texts == ["sks benign", "a lesion"]
    assert fixed.context(torch.tensor([3, 0]), 1, cond[:2], None, None, torch.float32)[:, 0, 0].tolist() == [0, 0, 1]


def test_one_caption_for_all_trains_the_fixed_prompts_lora(tiny_base, instance_images, tmp_path):
    """`lora.caption: attributes` where every image has the same caption is `fixed` with that prompt: the same
    adapter bytes (the per-image path changes nothing for one prompt); a caption per image trains another."""
    from safetensors.torch import load_file

    root, paths = instance_images
    cfg = LoraTrainConfig(max_steps=2, batch_size=2, rank=4, alpha=4, checkpoint_every=2)
    prompt = cfg.instance_prompt.format(label="malignant")
    train_lora(tiny_base, paths[:4], "malignant", tmp_path / "fixed", tmp_path / "w", cfg, repo_root=root)
    train_lora(tiny_base, paths[:4], "malignant", tmp_path / "same", tmp_path / "w", cfg, repo_root=root,
               captions=[prompt] * 4)
    train_lora(tiny_base, paths[:4], "malignant", tmp_path / "own", tmp_path / "w", cfg, repo_root=root,
               captions=[f"{prompt}, {t} skin" for t in ("dark", "light", "dark", "tan")])
    w = {k: load_file(tmp_path / k / "pytorch_lora_weights.safetensors") for k in ("fixed", "same", "own")}
    assert all(torch.equal(w["fixed"][n], w["same"][n]) for n in w["fixed"])
    assert not all(torch.equal(w["fixed"][n], w["own"][n]) for n in w["fixed"])
    assert len(list((tmp_path / "w").glob("malignant-*"))) == 3  # each its own resumable folder
