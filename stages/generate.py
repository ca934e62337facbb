"""Stage generate: the synthetic set -> data/synthetic/{images,metadata.csv}."""
import json
from pathlib import Path

import pandas as pd
import torch
from accelerate import PartialState

from dermsynth.config import from_block, save_resolved
from dermsynth.diffusion.preview import real_vs_synthetic
from dermsynth.diffusion.sample import GenerateConfig, generate
from dermsynth.timings import write_timings
from stages._common import main, relaunch, under_launcher


def run(params: dict) -> None:
    block = {**params["generate"], "seed": params["data_seed"]}
    processes = block.pop("processes")  # how, not what: the images are the same for any number
    if processes > 1 and not under_launcher():
        return relaunch("stages.generate", processes, "generate.processes")
    for k in ("classes", "samplers"):
        block[k] = tuple(block[k])
    cfg = from_block(GenerateConfig, block)
    out = Path(params["paths"]["synthetic"])
    loras = {label: f"models/lora/{label}" for label in cfg.classes}
    state = PartialState(cpu=not torch.cuda.is_available()) if under_launcher() else None
    summary = generate(cfg, "models/base", loras, out, Path(params["paths"]["work"]), state=state)
    if state is not None and not state.is_main_process:
        return
    write_timings("generate", summary.pop("timings"), params["paths"]["reports"])
    save_resolved(cfg, out / "config.json")
    rep = Path(params["paths"]["reports"]) / "generate"
    rep.mkdir(parents=True, exist_ok=True)
    (rep / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    real = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv")
    real_vs_synthetic(real, pd.read_csv(out / "metadata.csv"), 8, params["data_seed"]).save(rep / "real_vs_synthetic.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(run)
