"""Training loop of a timm classifier on a hybrid training table, with validation-based early stopping."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import PartialState
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config
from torch.utils.data import DataLoader, Dataset

from dermsynth.classify.loop import agree, batches, distributed, optimiser, process_mean, seed_all, train_epoch
from dermsynth.classify.metrics import binary_metrics, youden_threshold
from dermsynth.classify.models import create_classifier
from dermsynth.errors import UserValueError
from dermsynth.parallel import torch_threads
from dermsynth.params import Train, defaults_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
@defaults_from(Train)
class TrainConfig:
    model: str = "mobilenetv2_100"
    img_size: int
    epochs: int
    batch_size: int
    lr: float
    min_lr: float
    weight_decay: float
    warmup_epochs: float
    drop_rate: float
    pretrained_file: str
    balanced_batches: bool
    hflip: float
    vflip: float
    color_jitter: float
    scale_min: float
    early_stopping_patience: int
    schedule: str
    pretrain_epochs: int
    finetune_lr: float
    mixed_precision: str
    threads: int
    workers: int
    seed: int = 0


class ImageTable(Dataset):
    """Rows of (path, label) as (tensor, 0/1) through a timm transform."""

    def __init__(self, df: pd.DataFrame, transform, root: str | Path = "."):
        self.paths = [Path(root) / p for p in df["path"]]
        self.y = (df["label"] == "malignant").astype(int).to_numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), int(self.y[i])


def transforms(model: torch.nn.Module, cfg: TrainConfig):
    data_cfg = resolve_data_config(model=model)  # the model's own mean/std
    common = dict(input_size=(3, cfg.img_size, cfg.img_size), mean=data_cfg["mean"], std=data_cfg["std"],
                  interpolation="bicubic")
    train = create_transform(**common, is_training=True, hflip=cfg.hflip, vflip=cfg.vflip,
                             color_jitter=cfg.color_jitter, scale=(cfg.scale_min, 1.0), ratio=(0.9, 1.1))
    evaluate = create_transform(**common, is_training=False, crop_pct=1.0)
    return train, evaluate


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def predict(model: torch.nn.Module, df: pd.DataFrame, transform, batch_size: int = 128, root: str | Path = ".") -> np.ndarray:
    """Probability of malignant for every row."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for x, _ in DataLoader(ImageTable(df, transform, root), batch_size=batch_size, shuffle=False):
        out.append(F.softmax(model(x.to(dev)).float(), dim=1)[:, 1].cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _validate(net: torch.nn.Module, val_df: pd.DataFrame, y_val: np.ndarray, t_eval: Callable, root: str | Path) -> dict:
    scores = predict(net, val_df, t_eval, root=root)
    return binary_metrics(y_val, scores, youden_threshold(y_val, scores))


def _epoch_row(net: torch.nn.Module, val_df: pd.DataFrame, y_val: np.ndarray, t_eval, root: str | Path, epoch: int,
               train_loss: float, lr: float, images_per_second: float) -> dict:
    """Validate after an epoch; the history row it logs (and MLflow's curves)."""
    val = _validate(net, val_df, y_val, t_eval, root)
    row = {"epoch": epoch + 1, "train_loss": train_loss, "val_auc": val["auc"],
           "val_balanced_accuracy": val["balanced_accuracy"], "lr": lr, "images_per_second": images_per_second}
    log.info("epoch %d: loss %.4f val auc %.4f bal.acc %.4f (%.0f img/s)", epoch + 1, row["train_loss"],
             row["val_auc"], row["val_balanced_accuracy"], row["images_per_second"])
    return row


def training_phases(train_df: pd.DataFrame, cfg: TrainConfig) -> list[tuple[str, pd.DataFrame, TrainConfig]]:
    """`train.schedule` as (phase, rows, settings): mixed, one phase on the whole set; synthetic_then_real,
    the synthetic slots' rows (origin other than real: synthetic images, or the control arm's held-out
    real ones) for `pretrain_epochs` at `lr`, then the real rows for `epochs` at `finetune_lr`. A part with
    no rows is skipped: ratio 0 trains as mixed (one baseline for both schedules), ratio 1 on synthetic only."""
    if cfg.schedule == "mixed":
        return [("mixed", train_df, cfg)]
    if "origin" not in train_df:
        raise UserValueError("train.schedule synthetic_then_real: the training table has no `origin` column "
                             "(dermsynth.classify.mixing.mix writes it) to tell its synthetic part from its real part")
    slots, real = train_df[train_df["origin"] != "real"], train_df[train_df["origin"] == "real"]
    phases = [("synthetic", slots, replace(cfg, epochs=cfg.pretrain_epochs))] if len(slots) else []
    if len(real):
        phases.append(("real", real, replace(cfg, lr=cfg.finetune_lr) if len(slots) else cfg))
    return phases


@dataclass
class _Fit:
    """One training run across its phases: the network, validation, and what has happened so far."""
    net: torch.nn.Module
    t_train: Callable
    t_eval: Callable
    val_df: pd.DataFrame
    y_val: np.ndarray
    g: torch.Generator
    dev: torch.device
    state: PartialState | None
    root: str | Path
    out: Path
    on_epoch: Callable[[int, dict], None] | None
    world: int = 1
    rank: int = 0
    t0: float = field(default_factory=time.perf_counter)
    best: float = -math.inf
    best_epoch: int = -1
    done: int = 0  # epochs run, over every phase
    per_phase: dict[str, int] = field(default_factory=dict)
    seen: int = 0
    history: list[dict] = field(default_factory=list)


def _fit_phase(f: _Fit, phase: str, rows: pd.DataFrame, cfg: TrainConfig, select: bool, tagged: bool) -> None:
    """Epochs on `rows` with this phase's settings (its own optimiser and warm-up cosine schedule). The last
    phase (`select`) keeps its best epoch by validation AUROC and stops early; an earlier one runs all its
    epochs and hands its last weights on."""
    is_main = f.rank == 0
    data = ImageTable(rows, f.t_train, f.root)
    loader = DataLoader(data, batch_sampler=batches(data, cfg, f.g, f.world, f.rank), num_workers=cfg.workers,
                        generator=f.g, persistent_workers=cfg.workers > 0)
    steps = max(len(loader), 1)
    step = optimiser(distributed(f.net, f.dev) if f.world > 1 else f.net, cfg, steps, f.dev)
    if select:
        f.best_epoch = f.done - 1  # patience counts from this phase's start
    name = f"{cfg.model}{f' {phase}' if tagged else ''} epoch"
    for epoch in range(cfg.epochs):
        losses, f.seen = train_epoch(step, loader, epoch, steps, f"{name} {epoch + 1}/{cfg.epochs}", f.world, f.seen,
                                     f.t0)
        train_loss = process_mean(float(np.mean(losses)), f.state)
        monitor = -math.inf
        if is_main:  # the main process validates, logs and saves; the others follow its verdict
            row = _epoch_row(f.net, f.val_df, f.y_val, f.t_eval, f.root, f.done, train_loss,
                             step.opt.param_groups[0]["lr"], f.seen / (time.perf_counter() - f.t0))
            f.history.append(row | ({"phase": phase} if tagged else {}))
            if f.on_epoch:
                f.on_epoch(f.done + 1, row)  # one MLflow run: both phases' curves on one epoch axis
            monitor = -math.inf if math.isnan(row["val_auc"]) else row["val_auc"]
        f.done += 1
        f.per_phase[phase] = f.per_phase.get(phase, 0) + 1
        if not select:
            continue
        monitor = agree(monitor, f.state)
        if monitor > f.best:
            f.best, f.best_epoch = monitor, f.done
            if is_main:
                save_file({k: v.detach().cpu().contiguous() for k, v in f.net.state_dict().items()},
                          f.out / "model.safetensors")
        elif f.done - f.best_epoch >= cfg.early_stopping_patience:
            log.info("early stop: no better validation AUROC for %d epochs", cfg.early_stopping_patience)
            break


def train_classifier(train_df: pd.DataFrame, val_df: pd.DataFrame, cfg: TrainConfig, out_dir: str | Path,
                     on_epoch: Callable[[int, dict], None] | None = None, root: str | Path = ".",
                     state: PartialState | None = None) -> dict:
    """Train by `cfg.schedule` (training_phases), keep the best epoch of the last phase by validation AUROC
    in `out_dir/model.safetensors`; returns a summary.

    With `state` from `accelerate launch` (several processes), training runs under DDP: each process
    takes a slice of every global batch; the main process validates, saves and calls `on_epoch`.
    """
    if cfg.img_size == 0:  # the schema's 0: the images' own side (the prepared size)
        with Image.open(Path(root) / train_df["path"].iloc[0]) as im:
            cfg = replace(cfg, img_size=min(im.size))
    world, rank = (state.num_processes, state.process_index) if state is not None else (1, 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = state.device if state is not None else _device()
    if dev.type == "cpu" and cfg.threads > 0:
        # `threads` is the budget of all processes together (and of the queued experiments beside this one)
        torch.set_num_threads(max(1, torch_threads(cfg.threads) // world))
    phases = training_phases(train_df, cfg)
    seed_all(cfg.seed)
    net = create_classifier(cfg.model, cfg.img_size, cfg.pretrained_file, cfg.drop_rate).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    t_train, t_eval = transforms(net, cfg)
    g = torch.Generator().manual_seed(cfg.seed)  # the same on every process: one global sequence of batches
    y_val = (val_df["label"] == "malignant").astype(int).to_numpy()
    f = _Fit(net, t_train, t_eval, val_df, y_val, g, dev, state, root, out, on_epoch, world, rank)
    for i, (phase, rows, phase_cfg) in enumerate(phases):
        _fit_phase(f, phase, rows, phase_cfg, select=i == len(phases) - 1, tagged=cfg.schedule != "mixed")
    summary = {"best_epoch": f.best_epoch, "best_val_auc": f.best, "epochs_run": f.done}
    if cfg.schedule != "mixed":
        summary["epochs_per_phase"] = f.per_phase
    if rank != 0:
        return summary
    # the speed goes to MLflow only: in a DVC output it would change the hash on every run
    pd.DataFrame(f.history).drop(columns="images_per_second").to_csv(out / "history.csv", index=False)
    return summary | {"images_per_second": f.history[-1]["images_per_second"] if f.history else 0.0,
                      "seconds": round(time.perf_counter() - f.t0, 1)}


def load_classifier(out_dir: str | Path, cfg: TrainConfig) -> torch.nn.Module:
    model = create_classifier(cfg.model, cfg.img_size, "", cfg.drop_rate)
    model.load_state_dict(load_file(Path(out_dir) / "model.safetensors"))
    return model.to(_device()).eval()
