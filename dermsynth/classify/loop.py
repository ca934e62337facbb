"""The optimisation machinery of classifier training: batches (balanced, sharded over processes), the
AdamW + warm-up cosine step with mixed precision, DDP and the cross-process agreements. The training
schedule (which rows, how many epochs, which learning rate, when to stop) is dermsynth.classify.train's.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.data_loader import BatchSamplerShard
from timm.scheduler import CosineLRScheduler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from dermsynth.errors import UserValueError
from dermsynth.precision import resolve


class BatchSettings(Protocol):
    """What batching reads of a dermsynth.classify.train.TrainConfig (not imported: train imports this module)."""
    batch_size: int
    balanced_batches: bool


class StepSettings(Protocol):
    """What the optimisation step reads of a TrainConfig."""
    lr: float
    weight_decay: float
    epochs: int
    min_lr: float
    warmup_epochs: float
    mixed_precision: str


def amp_dtype(mixed_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `train.mixed_precision` on `device` (None = full fp32)."""
    dtype = resolve(mixed_precision, "classifier", device.type == "cuda", "train.mixed_precision")
    return None if dtype == torch.float32 else dtype


def batches(data: Dataset, cfg: BatchSettings, g: torch.Generator, world: int, rank: int) -> BatchSampler:
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


def distributed(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """DDP over the processes of `accelerate launch` (gradients averaged = the global batch's mean loss)."""
    if dev.type == "cuda":  # SyncBatchNorm is CUDA-only: on CPU (gloo) BatchNorm sees each process's slice
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def agree(value: float, state: PartialState | None) -> float:
    """The main process's value on every process (the early-stopping decision must be the same everywhere)."""
    if state is None or state.num_processes == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def process_mean(value: float, state: PartialState | None) -> float:
    """The mean of `value` over all processes (each one's mean loss over its slice: the global batch's)."""
    if state is None or state.num_processes == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=state.device)  # NCCL reduces only tensors on the GPU
    torch.distributed.all_reduce(t)
    return float(t.item()) / state.num_processes


@dataclass
class Step:
    """What one optimisation step needs, built once per run."""
    model: torch.nn.Module  # the DDP wrapper under several processes
    opt: torch.optim.Optimizer
    sched: CosineLRScheduler
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    dev: torch.device


def optimiser(model: torch.nn.Module, cfg: StepSettings, steps: int, dev: torch.device) -> Step:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = CosineLRScheduler(opt, t_initial=cfg.epochs * steps, lr_min=cfg.min_lr, warmup_t=int(cfg.warmup_epochs * steps),
                              warmup_lr_init=cfg.lr * 0.01, t_in_epochs=False)
    amp = amp_dtype(cfg.mixed_precision, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)  # fp16 gradients underflow unscaled
    return Step(model, opt, sched, scaler, amp, dev)


def train_epoch(s: Step, loader: DataLoader, epoch: int, steps: int, desc: str, world: int,
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


def seed_all(seed: int) -> None:
    # timm's RandomResizedCrop draws from Python's `random`, the rest from torch: seed all three
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
