"""Training loop of a timm classifier on a hybrid training table, with validation-based early stopping."""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.data_loader import BatchSamplerShard
from PIL import Image
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config
from timm.scheduler import CosineLRScheduler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from dermsynth.classify.metrics import binary_metrics, youden_threshold
from dermsynth.classify.models import create_classifier
from dermsynth.errors import UserValueError
from dermsynth.parallel import torch_threads
from dermsynth.params import Train, defaults_from
from dermsynth.precision import resolve

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


def amp_dtype(mixed_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `train.mixed_precision` on `device` (None = full fp32)."""
    dtype = resolve(mixed_precision, "classifier", device.type == "cuda", "train.mixed_precision")
    return None if dtype == torch.float32 else dtype


def _batches(data: ImageTable, cfg: TrainConfig, g: torch.Generator, world: int, rank: int) -> BatchSampler:
    """The global batches of one process; with several, each takes its slice of every global batch, so
    N processes see the same images per step as one process with the same `batch_size`."""
    if cfg.balanced_batches:
        counts = np.bincount(data.y, minlength=2).astype(float)
        w = 1.0 / np.maximum(counts, 1)[data.y]
        sampler = WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), len(data), replacement=True, generator=g)
    else:
        sampler = RandomSampler(data, generator=g)
    batches = BatchSampler(sampler, cfg.batch_size, drop_last=len(data) > cfg.batch_size)
    if world == 1:
        return batches
    if cfg.batch_size % world:
        raise UserValueError(f"train.batch_size: {cfg.batch_size} is the global batch and must divide evenly "
                             f"between train.processes={world} processes")
    return BatchSamplerShard(batches, world, rank, split_batches=True)


def _distributed(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """DDP over the processes of `accelerate launch` (gradients averaged = the global batch's mean loss)."""
    if dev.type == "cuda":  # SyncBatchNorm is CUDA-only: on CPU (gloo) BatchNorm sees each process's slice
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def _agree(value: float, state: PartialState | None) -> float:
    """The main process's value on every process (the early-stopping decision must be the same everywhere)."""
    if state is None or state.num_processes == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _mean(value: float, state: PartialState | None) -> float:
    """The mean of `value` over all processes (each one's mean loss over its slice: the global batch's)."""
    if state is None or state.num_processes == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=state.device)  # NCCL reduces only tensors on the GPU
    torch.distributed.all_reduce(t)
    return float(t.item()) / state.num_processes


@dataclass
class _Step:
    """What one optimisation step needs, built once per run."""
    model: torch.nn.Module  # the DDP wrapper under several processes
    opt: torch.optim.Optimizer
    sched: CosineLRScheduler
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    dev: torch.device


def _optimiser(model: torch.nn.Module, cfg: TrainConfig, steps: int, dev: torch.device) -> _Step:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = CosineLRScheduler(opt, t_initial=cfg.epochs * steps, lr_min=cfg.min_lr, warmup_t=int(cfg.warmup_epochs * steps),
                              warmup_lr_init=cfg.lr * 0.01, t_in_epochs=False)
    amp = amp_dtype(cfg.mixed_precision, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)  # fp16 gradients underflow unscaled
    return _Step(model, opt, sched, scaler, amp, dev)


def _train_epoch(s: _Step, loader: DataLoader, epoch: int, steps: int, desc: str, world: int,
                 seen: int, t0: float) -> tuple[list[float], int]:
    """One pass over this process's slices of the global batches; returns the losses and images seen so far."""
    s.model.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=desc, mininterval=2.0, leave=False)
    for x, y in bar:
        x, y = x.to(s.dev, non_blocking=True), y.to(s.dev, non_blocking=True)
        with torch.autocast(s.dev.type, dtype=s.amp or torch.float32, enabled=s.amp is not None):
            loss = F.cross_entropy(s.model(x), y)
        s.opt.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        s.scaler.step(s.opt)
        s.scaler.update()
        s.sched.step_update(epoch * steps + len(losses) + 1)
        losses.append(loss.item())
        seen += len(x) * world
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                        refresh=False)
    return losses, seen


def _validate(net: torch.nn.Module, val_df: pd.DataFrame, y_val: np.ndarray, t_eval: Callable, root: str | Path) -> dict:
    scores = predict(net, val_df, t_eval, root=root)
    return binary_metrics(y_val, scores, youden_threshold(y_val, scores))


def _seed_all(seed: int) -> None:
    # timm's RandomResizedCrop draws from Python's `random`, the rest from torch: seed all three
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _epoch_row(net: torch.nn.Module, val_df: pd.DataFrame, y_val: np.ndarray, t_eval, root: str | Path, epoch: int,
               train_loss: float, lr: float, images_per_second: float) -> dict:
    """Validate after an epoch; the history row it logs (and MLflow's curves)."""
    val = _validate(net, val_df, y_val, t_eval, root)
    row = {"epoch": epoch + 1, "train_loss": train_loss, "val_auc": val["auc"],
           "val_balanced_accuracy": val["balanced_accuracy"], "lr": lr, "images_per_second": images_per_second}
    log.info("epoch %d: loss %.4f val auc %.4f bal.acc %.4f (%.0f img/s)", epoch + 1, row["train_loss"],
             row["val_auc"], row["val_balanced_accuracy"], row["images_per_second"])
    return row


def train_classifier(train_df: pd.DataFrame, val_df: pd.DataFrame, cfg: TrainConfig, out_dir: str | Path,
                     on_epoch: Callable[[int, dict], None] | None = None, root: str | Path = ".",
                     state: PartialState | None = None) -> dict:
    """Train, keep the best epoch by validation AUROC in `out_dir/model.safetensors`; returns a summary.

    With `state` from `accelerate launch` (several processes), training runs under DDP: each process
    takes a slice of every global batch; the main process validates, saves and calls `on_epoch`.
    """
    if cfg.img_size == 0:  # the schema's 0: the images' own side (the prepared size)
        with Image.open(Path(root) / train_df["path"].iloc[0]) as im:
            cfg = replace(cfg, img_size=min(im.size))
    world, rank = (state.num_processes, state.process_index) if state is not None else (1, 0)
    is_main = rank == 0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = state.device if state is not None else _device()
    if dev.type == "cpu" and cfg.threads > 0:
        # `threads` is the budget of all processes together (and of the queued experiments beside this one)
        torch.set_num_threads(max(1, torch_threads(cfg.threads) // world))
    _seed_all(cfg.seed)
    net = create_classifier(cfg.model, cfg.img_size, cfg.pretrained_file, cfg.drop_rate).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    t_train, t_eval = transforms(net, cfg)
    data = ImageTable(train_df, t_train, root)
    g = torch.Generator().manual_seed(cfg.seed)  # the same on every process: one global sequence of batches
    loader = DataLoader(data, batch_sampler=_batches(data, cfg, g, world, rank), num_workers=cfg.workers,
                        generator=g, persistent_workers=cfg.workers > 0)
    steps = max(len(loader), 1)
    step = _optimiser(_distributed(net, dev) if world > 1 else net, cfg, steps, dev)
    y_val = (val_df["label"] == "malignant").astype(int).to_numpy()
    best, best_epoch, history, seen, t0 = -math.inf, -1, [], 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        losses, seen = _train_epoch(step, loader, epoch, steps, f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", world,
                                    seen, t0)
        train_loss = _mean(float(np.mean(losses)), state)
        monitor = -math.inf
        if is_main:  # the main process validates, logs and saves; the others follow its verdict
            row = _epoch_row(net, val_df, y_val, t_eval, root, epoch, train_loss, step.opt.param_groups[0]["lr"],
                             seen / (time.perf_counter() - t0))
            history.append(row)
            if on_epoch:
                on_epoch(epoch + 1, row)
            monitor = -math.inf if math.isnan(row["val_auc"]) else row["val_auc"]
        monitor = _agree(monitor, state)
        if monitor > best:
            best, best_epoch = monitor, epoch + 1
            if is_main:
                save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, out / "model.safetensors")
        elif epoch + 1 - best_epoch >= cfg.early_stopping_patience:
            log.info("early stop: no better validation AUROC for %d epochs", cfg.early_stopping_patience)
            break
    if not is_main:
        return {"best_epoch": best_epoch, "best_val_auc": best, "epochs_run": epoch + 1}
    # the speed goes to MLflow only: in a DVC output it would change the hash on every run
    pd.DataFrame(history).drop(columns="images_per_second").to_csv(out / "history.csv", index=False)
    return {"best_epoch": best_epoch, "best_val_auc": best, "epochs_run": len(history),
            "images_per_second": history[-1]["images_per_second"] if history else 0.0,
            "seconds": round(time.perf_counter() - t0, 1)}


def load_classifier(out_dir: str | Path, cfg: TrainConfig) -> torch.nn.Module:
    model = create_classifier(cfg.model, cfg.img_size, "", cfg.drop_rate)
    model.load_state_dict(load_file(Path(out_dir) / "model.safetensors"))
    return model.to(_device()).eval()
