"""Stage generate: the synthetic set -> data/synthetic/{images,metadata.csv}."""
import json
from pathlib import Path

import pandas as pd

from dermsynth.config import from_block, save_resolved
from dermsynth.diffusion.preview import real_vs_synthetic
from dermsynth.diffusion.sample import GenerateConfig, generate
from dermsynth.timings import write_timings
from stages._common import main


def run(params: dict) -> None:
    block = {**params["generate"], "seed": params["data_seed"]}
    for k in ("classes", "samplers"):
        block[k] = tuple(block[k])
    cfg = from_block(GenerateConfig, block)
    out = Path(params["paths"]["synthetic"])
    loras = {label: f"models/lora/{label}" for label in cfg.classes}
    summary = generate(cfg, "models/base", loras, out, Path(params["paths"]["work"]))
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
