"""Stage generate: the synthetic set -> data/synthetic/{images,metadata.csv}.

generate.source `models/lora` samples the LoRAs this pipeline trains; any other value names a released
synthetic set, imported instead (dermsynth.diffusion.released, docs/released_synthetic.md)."""
import json
from collections import Counter
from pathlib import Path

import pandas as pd

from dermsynth.config import from_block, prepared_size, save_resolved
from dermsynth.contracts import QUARANTINE_COLUMNS
from dermsynth.diffusion.preview import real_vs_synthetic
from dermsynth.files import write_json
from dermsynth.synthetic_source import LORA_SOURCE, is_lora_source
from dermsynth.timings import write_timings
from dermsynth.traits import request
from stages._common import main, relaunch, under_launcher


# generate.* keys this stage reads itself: which LoRAs (source), how many processes, which traits to ask for
STAGE_KEYS = ("source", "processes", "attributes")


def _generate(params: dict, out: Path, rep: Path) -> dict | None:
    import torch
    from accelerate import PartialState

    from dermsynth.diffusion.sample import GenerateConfig, generate

    processes = params["generate"]["processes"]  # how, not what: the images are the same for any number
    if processes > 1 and not under_launcher():
        relaunch("stages.generate", processes, "generate.processes")
        return None
    # source (models/lora) says which LoRAs, and attributes which traits the prompts ask for, not how to sample
    cfg = from_block(GenerateConfig, params["generate"], skip=STAGE_KEYS, seed=params["data_seed"])
    loras = {label: f"{LORA_SOURCE}/{label}" for label in cfg.classes}
    requested = None
    if params["generate"]["attributes"]:  # each image's traits, in the mix asked for (dermsynth.traits)
        m = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
        requested = request(params["generate"]["attributes"], m[m.split == "train"], cfg.classes, cfg.n_per_class,
                            params["data_seed"])
    state = PartialState(cpu=not torch.cuda.is_available()) if under_launcher() else None
    summary = generate(cfg, "models/base", loras, out, Path(params["paths"]["work"]), state=state, requested=requested)
    if state is not None and not state.is_main_process:
        return None
    asked = {"attributes": params["generate"]["attributes"]} if requested else {}
    save_resolved(vars(cfg) | asked, out / "config.json")
    pd.DataFrame(columns=QUARANTINE_COLUMNS).to_csv(rep / "quarantine.csv", index=False)  # nothing read from outside
    if requested:  # how many images of each class ask for each value
        summary["requested"] = {label: {t: dict(sorted(Counter(v).items())) for t, v in per.items()}
                                for label, per in requested.items()}
    return {"mode": "generate", "source": LORA_SOURCE, **summary}


def _import(params: dict, out: Path, rep: Path) -> dict:
    from dermsynth.diffusion.released import ImportConfig, import_released

    g = params["generate"]
    cfg = ImportConfig(source=g["source"], classes=tuple(g["classes"]), n_per_class=g["n_per_class"],
                       size=prepared_size(params["paths"]["prepared"]), seed=params["data_seed"], workers=g["threads"])
    _, quarantine, summary = import_released(cfg, out, quarantine_file=rep / "quarantine.csv", outputs=params["paths"])
    if len(quarantine):
        print(f"WARNING: {len(quarantine)} files of {cfg.source} quarantined ({summary['quarantined_per_reason']}); "
              f"see {rep / 'quarantine.csv'}")
    return summary


def run(params: dict) -> None:
    out = Path(params["paths"]["synthetic"])
    rep = Path(params["paths"]["reports"]) / "generate"
    rep.mkdir(parents=True, exist_ok=True)
    summary = (_generate if is_lora_source(params["generate"]["source"]) else _import)(params, out, rep)
    if summary is None:  # a relaunch, or a process of several that is not the main one
        return
    write_timings("generate", summary.pop("timings"), params["paths"]["reports"])
    write_json((rep / "summary.json"), summary)
    real = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False)
    synthetic = pd.read_csv(out / "metadata.csv", keep_default_na=False)
    real_vs_synthetic(real, synthetic, 8, params["data_seed"]).save(rep / "real_vs_synthetic.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(run)
