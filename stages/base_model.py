"""Stage base_model: models/base/, a standard diffusers SD pipeline directory.

`tiny`: built from config and pre-trained on the prepared training images (offline demo).
A path: a local SD1.5 (diffusers directory or single .safetensors/.ckpt file), re-saved as is.
"""
import json
import shutil
from pathlib import Path

import pandas as pd
import torch

from dermsynth.config import from_block, prepared_size, save_resolved
from dermsynth.diffusion.base import load_pipeline
from dermsynth.diffusion.data import load_images
from dermsynth.diffusion.pretrain import PretrainConfig, pretrain_unet, pretrain_vae
from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline
from dermsynth.files import write_json
from dermsynth.parallel import torch_threads
from dermsynth.traits import captions
from stages._common import main

OUT = Path("models/base")


def run(params: dict) -> None:
    p = params["base_model"]
    torch.manual_seed(params["data_seed"])
    if torch.get_num_threads() > 1 and p.get("threads"):
        torch.set_num_threads(torch_threads(p["threads"]))
    report = {"name": p["name"]}
    if p["name"] == "tiny":
        tiny = from_block(TinyConfig, p["tiny"], image_size=prepared_size(params["paths"]["prepared"]),
                          seed=params["data_seed"])
        cfg = from_block(PretrainConfig, p["pretrain"], seed=params["data_seed"])
        pipe = build_tiny_pipeline(tiny)
        m = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False)
        train = m[m.split == "train"]
        images = load_images(train["path"], size=tiny.image_size)
        vae_loss = pretrain_vae(pipe, images, cfg)
        unet_loss = pretrain_unet(pipe, images, cfg, captions(cfg.caption, train))
        report |= {"train_images": len(images), "vae_final_loss": sum(vae_loss[-50:]) / 50,
                   "unet_final_loss": sum(unet_loss[-50:]) / 50,
                   "scaling_factor": pipe.vae.config.scaling_factor}
        resolved = {"tiny": vars(tiny), "pretrain": vars(cfg)}
    else:
        pipe = load_pipeline(p["name"], p.get("config") or None)
        resolved = {"source": p["name"], "config": p.get("config")}
    shutil.rmtree(OUT, ignore_errors=True)  # only once the new model is in hand: a failed load keeps the old one
    pipe.save_pretrained(OUT, safe_serialization=True)
    save_resolved(resolved, OUT / "dermsynth_config.json")
    rep = Path(params["paths"]["reports"]) / "base_model"
    rep.mkdir(parents=True, exist_ok=True)
    write_json((rep / "summary.json"), report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(run)
