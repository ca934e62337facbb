"""Stage train_lora@<label>: DreamBooth-LoRA for one class -> models/lora/<label>/.

Multi-GPU: `accelerate launch -m stages.train_lora --label malignant` (same code path).
"""
import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from dermsynth.config import from_block, save_resolved
from dermsynth.diffusion.data import instance_images
from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
from dermsynth.diffusion.preview import lora_samples_grid
from dermsynth.files import write_json
from dermsynth.parallel import torch_threads
from dermsynth.timings import write_timings
from dermsynth import traits
from stages._common import main

# lora.* keys this stage reads itself: how it runs (threads) and which images and captions it hands over
STAGE_KEYS = ("threads", "max_images_per_class", "caption", "caption_template")


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True, choices=["benign", "malignant"])
    label = ap.parse_args().label
    threads = params["lora"]["threads"]
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(torch_threads(threads))
    # which images is the stage's choice (max_images_per_class), how to learn them the library's
    cfg = from_block(LoraTrainConfig, params["lora"], skip=STAGE_KEYS, seed=params["data_seed"])
    m = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    cap = params["lora"]["max_images_per_class"]
    paths = instance_images(m, label, cap, params["data_seed"])
    captions = None
    if params["lora"]["caption"] == "attributes":  # each image's traits in its caption (dermsynth.traits)
        rows = m.set_index("path").loc[paths]
        captions = traits.captions(params["lora"]["caption_template"], rows.reset_index())
        print(f"{label}: {len(set(captions))} distinct captions, e.g. {captions[0]!r}")
    out = Path("models/lora") / label
    res = train_lora("models/base", paths, label, out, Path(params["paths"]["work"]) / "lora", cfg, captions=captions)
    if not res.is_main:  # `accelerate launch`: the main process alone writes the outputs and draws samples
        return
    save_resolved({**vars(cfg), "label": label, "instance_images": len(paths)}
                  | ({"max_images_per_class": cap} if cap else {})
                  | ({"caption_template": params["lora"]["caption_template"], "captions": len(set(captions))}
                     if captions else {}), out / "dermsynth_config.json")
    rep = Path(params["paths"]["reports"]) / "lora" / label
    rep.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": range(1, len(res.losses) + 1), "loss": res.losses}).to_csv(rep / "loss.csv", index=False)
    lora_samples_grid("models/base", out, cfg.instance_prompt.format(label=label), cfg.validation_images,
                      params["data_seed"], rep / "samples.png")
    summary = {"label": label, "steps": res.steps,
               "final_loss": sum(res.losses[-20:]) / max(len(res.losses[-20:]), 1), "instance_images": len(paths)}
    write_json((rep / "summary.json"), summary)
    # where this run started depends on .work/, not on the inputs: a log line, not a versioned output
    write_timings(f"train_lora_{label}", {"resumed_from_step": res.resumed_from}, params["paths"]["reports"])
    print(json.dumps({**summary, "resumed_from": res.resumed_from}, indent=2))


if __name__ == "__main__":
    main(run)
