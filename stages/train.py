"""Stage train@<model>: a timm classifier on the hybrid real+synthetic training set (params: ratio).

Opens the MLflow run of the condition (model, ratio, seed, ...) with live training curves; the track
stage completes it with the test metrics (or logs it whole from the outputs where it is missing).
"""
import argparse
import json
import re
from pathlib import Path

import pandas as pd
import torch
from accelerate import PartialState

from dermsynth.classify.mixing import HELD_OUT, MixConfig, mix
from dermsynth.classify.models import model_slug
from dermsynth.classify.settings import settings_file
from dermsynth.classify.train import TrainConfig, train_classifier
from dermsynth.config import from_block, save_resolved
from dermsynth.errors import UserError
from dermsynth.files import write_json
from dermsynth.filter import kept_images
from dermsynth.params import check_model_names
from dermsynth.synthetic_source import generator_condition
from dermsynth.tracking import CONDITION_TAG, MODEL_TAG, RUN_FILE, condition_key, model_digest, start_run
from stages._common import main, relaunch, under_launcher


def short_run_name(model: str, ratio: float, seed: int, real_fraction: float = 1.0, pool: str = "synthetic",
                   schedule: str = "mixed") -> str:
    """A run name the MLflow table shows whole: `vit_tiny ratio=0.75 s=1` (ViT patch/size suffixes dropped);
    the control arm's runs end in `held-out real`, synthetic-then-real ones in `syn-then-real`."""
    short = re.sub(r"_patch\d+_\d+$", "", model)
    return (f"{short} ratio={ratio:g} s={seed}" + (f" rf={real_fraction:g}" if real_fraction < 1 else "")
            + (" held-out real" if pool == HELD_OUT else "") + (" syn-then-real" if schedule != "mixed" else ""))


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    name = ap.parse_args().model
    check_model_names(params)  # before the training set is written or an MLflow run opened
    # the settings train_config@<model> resolved (and that this stage depends on): one source, read back
    resolved = settings_file(params["paths"]["reports"], name)
    if not resolved.is_file():
        raise UserError(f"{resolved}: missing: this model's settings are resolved by `dvc repro train_config@{name}`")
    settings = json.loads(resolved.read_text())
    processes = settings["processes"]
    if processes > 1 and not under_launcher():
        return relaunch("stages.train", processes, "train.processes")
    state = PartialState(cpu=not torch.cuda.is_available()) if under_launcher() else None
    mix_cfg = from_block(MixConfig, settings["mixing"])
    cfg = from_block(TrainConfig, settings["train"])
    ratio = float(params["ratio"])
    manifest = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(params["paths"]["synthetic"]) / "metadata.csv", keep_default_na=False)
    scores = pd.read_csv(Path(params["paths"]["filter"]) / "scores.csv", keep_default_na=False)
    synthetic = kept_images(synthetic, scores)  # only what the filter stage kept
    train_df, counts = mix(manifest[manifest.split == "train"], synthetic, ratio, mix_cfg, cfg.seed)
    out = Path("models/classifiers") / model_slug(name)
    val_df = manifest[manifest.split == "val"]
    if state is not None and not state.is_main_process:  # DDP peer: trains its slice; files and MLflow are the main's
        train_classifier(train_df, val_df, cfg, out, state=state)
        return
    out.mkdir(parents=True, exist_ok=True)
    train_df.to_csv(out / "training_set.csv", index=False)
    print(f"training set (ratio={ratio}, {mix_cfg.mode}): " + json.dumps(counts))
    if state is not None:
        print(f"DDP over {state.num_processes} processes ({state.device.type}), global batch {cfg.batch_size}")
    # the per-class counts are params too: they say what the run was, and the report reads them
    run_params = {"ratio": ratio, "model": name, "seed": cfg.seed, "data_seed": params["data_seed"],
                  "real_fraction": mix_cfg.real_fraction, "synthetic_class_mix": mix_cfg.synthetic_class_mix,
                  "pool": mix_cfg.pool, "mixing": vars(mix_cfg), "counts": counts, "processes": processes,
                  "filter_policy": params["filter"]["policy"], "keep_fraction": params["filter"]["keep_fraction"],
                  "synthetic_kept": len(synthetic),
                  "generator": generator_condition(params["generate"]["source"], params["generate"]["attributes"]), "init": "pretrained" if cfg.pretrained_file else "random",
                  **vars(cfg)}
    run_name = short_run_name(name, ratio, cfg.seed, mix_cfg.real_fraction, mix_cfg.pool, cfg.schedule)
    if not cfg.pretrained_file:  # offline nothing is downloaded: say it, in the log, the run and the card
        print(f"WARNING: {name} starts from random weights (no train.pretrained_file); give local ImageNet "
              "weights for a pre-trained start")
    with start_run(run_name, run_params) as (mlflow, active):
        mlflow.log_metrics({k: float(v) for k, v in counts.items()})
        summary = train_classifier(train_df, val_df, cfg, out, state=state,
                                   on_epoch=lambda epoch, row: mlflow.log_metrics(row, step=epoch))
        mlflow.log_metrics({"best_val_auc": summary["best_val_auc"], "train_images_per_second": summary["images_per_second"],
                            "train_seconds": summary["seconds"]})
        # the run's params beside the weights: what the track stage finds this run by, or logs it from
        write_json((out / RUN_FILE), {"name": run_name, "params": run_params}, default=str)
        mlflow.set_tags({MODEL_TAG: model_digest(out), CONDITION_TAG: condition_key(out)})
        run_id = active.info.run_id
    save_resolved({"train": vars(cfg), "mixing": vars(mix_cfg), "ratio": ratio}, out / "config.json")
    # no timings and no run id in the DVC output: its files must be the same on every identical run
    kept = {k: v for k, v in summary.items() if k not in ("seconds", "images_per_second")}
    write_json((out / "summary.json"), {**kept, **counts})
    print(f"{name}: best val AUROC {summary['best_val_auc']:.4f} at epoch {summary['best_epoch']}, "
          f"{summary['images_per_second']:.0f} training images/s, MLflow run {run_id}")


if __name__ == "__main__":
    main(run)
