"""DreamBooth + LoRA fine-tuning of a Stable Diffusion UNet (and optionally its text encoder).

Follows diffusers' examples/dreambooth/train_dreambooth_lora.py: LoRA adapters through peft
(`unet.add_adapter`), trainable parameters in fp32 under mixed precision, AdamW with a warmup
schedule, optional prior preservation, everything under `accelerate` so the same code runs on
one CPU or several GPUs (`accelerate launch -m stages.train_lora ...`).

Resuming is exact: the batch, noise and timesteps of step s are pure functions of (seed, s), so a
checkpoint needs only the LoRA weights, the optimizer and LR-scheduler state and the step.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import StableDiffusionPipeline
from diffusers.optimization import get_scheduler
from diffusers.training_utils import cast_training_params
from peft import LoraConfig
from tqdm.auto import tqdm

from dermsynth.diffusion.base import load_pipeline
from dermsynth.diffusion.data import batch_indices, step_generator
from dermsynth.diffusion.latents import LatentCache, cache_key, encode_latents
from dermsynth.diffusion.lora_files import checkpoints, export_lora, load_checkpoint, save_checkpoint
from dermsynth.diffusion.lora_prompts import instance_prompts
from dermsynth.diffusion.pretrain import encode_prompts
from dermsynth.diffusion.tiny import training_scheduler
from dermsynth.files import dir_fingerprint, fingerprint
from dermsynth.params import Lora, defaults_from
from dermsynth.precision import DTYPES, accelerate_name, resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
@defaults_from(Lora)
class LoraTrainConfig:
    instance_prompt: str
    class_prompt: str
    prior_preservation: bool
    prior_loss_weight: float
    num_class_images: int
    rank: int
    alpha: int
    target_modules: tuple[str, ...]
    train_text_encoder: bool
    text_encoder_target_modules: tuple[str, ...]
    learning_rate: float
    text_encoder_lr: float
    optimizer: str
    lr_scheduler: str
    lr_warmup_steps: int
    adam_weight_decay: float
    max_grad_norm: float
    epochs: int
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    mixed_precision: str
    checkpoint_every: int
    keep_checkpoints: int
    flip_augment: bool
    validation_images: int
    seed: int = 0

    def total_steps(self, n_images: int) -> int:
        if self.max_steps > 0:
            return self.max_steps
        per_epoch = max(n_images // (self.batch_size * self.gradient_accumulation_steps), 1)
        return self.epochs * per_epoch


@dataclass
class LoraResult:
    out_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    is_main: bool = True  # under several processes only the main one exports and writes reports


def mixed_precision(requested: str) -> str:
    """accelerate's mixed_precision for `lora.mixed_precision` on this machine (dermsynth.precision)."""
    return accelerate_name(resolve(requested, "diffusion", torch.cuda.is_available(), "lora.mixed_precision"))


@torch.no_grad()
def _class_images(pipe: StableDiffusionPipeline, prompt: str, n: int, seed: int, work: Path) -> list[str]:
    """Prior-preservation images from the base model itself, generated once and kept in `work`
    (returned as names relative to `work / "class_images"`)."""
    out = work / "class_images"
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.png" for i in range(n)]
    todo = [i for i, name in enumerate(names) if not (out / name).is_file()]
    for s in range(0, len(todo), 16):
        idx = todo[s : s + 16]
        gens = [torch.Generator().manual_seed(seed * 7919 + i) for i in idx]
        imgs = pipe([prompt] * len(idx), num_inference_steps=25, guidance_scale=7.0, generator=gens,
                    output_type="pil").images
        for i, im in zip(idx, imgs):
            im.save(out / names[i])
    return names


@dataclass
class _Models:
    pipe: StableDiffusionPipeline
    unet: torch.nn.Module
    text_encoder: torch.nn.Module | None  # trained text encoder, or None when frozen
    weight_dtype: torch.dtype
    params: list


def _load_models(base_dir: str | Path, cfg: LoraTrainConfig, accelerator: Accelerator) -> _Models:
    """The base pipeline, frozen in the mixed-precision dtype, with LoRA adapters to train in fp32."""
    device = accelerator.device
    weight_dtype = DTYPES[accelerator.mixed_precision]
    pipe = load_pipeline(base_dir)
    pipe.set_progress_bar_config(disable=True)
    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False)
    for m in (vae, unet) + (() if cfg.train_text_encoder else (text_encoder,)):
        m.to(device)
        if weight_dtype != torch.float32:
            m.to(weight_dtype)
    text_encoder.to(device)
    torch.manual_seed(cfg.seed)  # LoRA's gaussian init
    unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights="gaussian",
                                target_modules=list(cfg.target_modules)))
    te_train = None
    if cfg.train_text_encoder:
        text_encoder.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights="gaussian",
                                            target_modules=list(cfg.text_encoder_target_modules)))
        te_train = text_encoder
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if te_train is not None:
            te_train.gradient_checkpointing_enable()
    cast_training_params([m for m in (unet, te_train) if m is not None], dtype=torch.float32)
    params = [p for m in (unet, te_train) if m is not None for p in m.parameters() if p.requires_grad]
    return _Models(pipe, unet, te_train, weight_dtype, params)


def _optimizer(models: _Models, cfg: LoraTrainConfig) -> torch.optim.Optimizer:
    """AdamW over the adapters: the text encoder's at `text_encoder_lr` where that is set (Derm-T2IM kept the
    two rates apart), bitsandbytes' 8-bit AdamW where asked for and possible (CUDA), else plain AdamW."""
    groups = [{"params": models.params}]
    if models.text_encoder is not None and cfg.text_encoder_lr > 0 and cfg.text_encoder_lr != cfg.learning_rate:
        te = {id(p) for p in models.text_encoder.parameters()}
        groups = [{"params": [p for p in models.params if id(p) not in te]},
                  {"params": [p for p in models.params if id(p) in te], "lr": cfg.text_encoder_lr}]
    adamw = torch.optim.AdamW
    if cfg.optimizer == "adamw_8bit":
        try:
            if not torch.cuda.is_available():
                raise ImportError("bitsandbytes' 8-bit optimizers need CUDA")
            import bitsandbytes

            adamw = bitsandbytes.optim.AdamW8bit
        except ImportError as e:
            log.warning("lora.optimizer adamw_8bit: %s; training with plain AdamW", e)
    return adamw(groups, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)


def _latents(models: _Models, instance_paths: list[str], repo_root: Path, cfg: LoraTrainConfig, work_root: Path,
             work: Path, base_dir: Path, label: str) -> tuple[LatentCache, LatentCache | None]:
    """Instance latents from the shared on-disk cache; prior-preservation latents, if asked for."""
    pipe, dtype = models.pipe, models.weight_dtype
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    key = cache_key(dir_fingerprint(base_dir), list(instance_paths), repo_root, size, cfg.flip_augment, dtype)
    inst = encode_latents(pipe.vae, list(instance_paths), repo_root, size, Path(work_root) / "latents" / key,
                          cfg.flip_augment, dtype, desc=f"LoRA {label}: encode latents")
    if not cfg.prior_preservation:
        return inst, None
    pipe.to(models.unet.device)
    names = _class_images(pipe, cfg.class_prompt, cfg.num_class_images, cfg.seed, work)
    cls = encode_latents(pipe.vae, names, work / "class_images", size, work / "class_latents", False, dtype,
                         desc=f"LoRA {label}: encode class images")
    return inst, cls


def _work_dir(work_root: Path, label: str, cfg: LoraTrainConfig, base_dir: Path, instance_paths: list[str],
              captions: list[str] | None) -> Path:
    """The run's resumable folder, named by what makes it; captions join the name only when given, so a
    fixed-caption run keeps the folder (and checkpoints) it always had."""
    if captions is not None and len(captions) != len(instance_paths):
        raise ValueError(f"{len(captions)} captions for {len(instance_paths)} instance images")
    key = fingerprint(asdict(cfg), dir_fingerprint(base_dir), sorted(instance_paths),
                      *([sorted(zip(instance_paths, captions))] if captions is not None else []))
    return work_root / f"{label}-{key}"


def train_lora(
    base_dir: str | Path,
    instance_paths: list[str],
    label: str,
    out_dir: str | Path,
    work_root: str | Path,
    cfg: LoraTrainConfig,
    repo_root: str | Path = ".",
    stop_after: int | None = None,
    captions: list[str] | None = None,
) -> LoraResult:
    """Train one class's LoRA; resumes from the newest checkpoint of the same configuration.

    `captions`, one per instance image: each image's own caption (`lora.caption: attributes`,
    dermsynth.traits.caption) instead of `cfg.instance_prompt` for all. `stop_after` ends the run early
    after that many steps (tests use it to simulate a crash).
    """
    # cpu=True without CUDA: under `accelerate launch` the processes then join over gloo
    accelerator = Accelerator(mixed_precision=mixed_precision(cfg.mixed_precision), cpu=not torch.cuda.is_available(),
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    work = _work_dir(Path(work_root), label, cfg, Path(base_dir), instance_paths, captions)
    work.mkdir(parents=True, exist_ok=True)
    models = _load_models(base_dir, cfg, accelerator)
    # the main process fills the shared caches; the others then open them (never two writers in one .tmp)
    with accelerator.main_process_first():
        inst, cls = _latents(models, instance_paths, Path(repo_root), cfg, Path(work_root), work, Path(base_dir), label)

    total = cfg.total_steps(len(inst))
    optimizer = _optimizer(models, cfg)
    lr_sched = get_scheduler(cfg.lr_scheduler, optimizer=optimizer,
                             num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
                             num_training_steps=total * accelerator.num_processes)
    if models.text_encoder is not None:
        models.unet, models.text_encoder, optimizer, lr_sched = accelerator.prepare(models.unet, models.text_encoder,
                                                                                    optimizer, lr_sched)
    else:
        models.unet, optimizer, lr_sched = accelerator.prepare(models.unet, optimizer, lr_sched)

    start, losses = 0, []
    ckpts = checkpoints(work)
    if ckpts:
        start, losses = load_checkpoint(ckpts[-1], models.unet, models.text_encoder, optimizer, lr_sched, accelerator)
        log.info("resuming %s LoRA from %s (step %d of %d)", label, ckpts[-1], start, total)
    end = total if stop_after is None else min(total, start + stop_after)
    losses = _train_steps(models, inst, cls, cfg, accelerator, optimizer, lr_sched, range(start, end), total, losses,
                          work, label, captions)
    accelerator.wait_for_everyone()
    result = LoraResult(Path(out_dir), end, losses, resumed_from=start, is_main=accelerator.is_main_process)
    if end < total:
        return result  # stopped early on purpose: no final export
    if accelerator.is_main_process:
        export_lora(Path(out_dir), accelerator.unwrap_model(models.unet),
                    accelerator.unwrap_model(models.text_encoder) if models.text_encoder is not None else None)
        last = checkpoints(work)[-1]
        shutil.copytree(last, Path(out_dir) / "checkpoints" / last.name, dirs_exist_ok=True)
    # no rank returns (and goes on to read the LoRA) before the main process has written it
    accelerator.wait_for_everyone()
    return result


def _train_steps(models: _Models, inst: LatentCache, cls: LatentCache | None, cfg: LoraTrainConfig,
                 accelerator: Accelerator, optimizer, lr_sched, steps: range, total: int, losses: list[float],
                 work: Path, label: str, captions: list[str] | None = None) -> list[float]:
    """The optimisation steps in `steps`, checkpointing every `cfg.checkpoint_every`."""
    pipe, unet, te_train, dtype = models.pipe, models.unet, models.text_encoder, models.weight_dtype
    device = accelerator.device
    noise_sched = training_scheduler(pipe)
    scale = pipe.vae.config.scaling_factor
    prompts = instance_prompts(cfg.instance_prompt.format(label=label), cfg.class_prompt, captions)
    cond = None
    if te_train is None:
        with torch.no_grad():
            cond = encode_prompts(pipe, prompts.texts).to(dtype)
    ids = pipe.tokenizer(prompts.texts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(device)
    pbar = tqdm(steps, initial=steps.start, total=total, desc=f"LoRA {label}", mininterval=2.0,
                disable=not accelerator.is_local_main_process)
    unet.train()
    for step in steps:
        for micro in range(cfg.gradient_accumulation_steps):
            s = step * cfg.gradient_accumulation_steps + micro
            # each process takes its own slice of one global batch; randomness is (seed, step, rank)
            g = step_generator(cfg.seed * 1000 + accelerator.process_index, s)
            idx = batch_indices(len(inst), cfg.batch_size * accelerator.num_processes, s, cfg.seed)
            idx = idx.chunk(accelerator.num_processes)[accelerator.process_index] if accelerator.num_processes > 1 else idx
            z0 = (inst.sample(idx, g) * scale).to(device, dtype)
            n_inst = len(z0)
            if cls is not None:
                cidx = batch_indices(len(cls), n_inst, s, cfg.seed + 1)
                z0 = torch.cat([z0, (cls.sample(cidx, g) * scale).to(device, dtype)])
            noise = torch.randn(z0.shape, generator=g).to(device, z0.dtype)
            t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z0),), generator=g).to(device)
            noisy = noise_sched.add_noise(z0, noise, t)
            ctx = prompts.context(idx, len(z0) - n_inst, cond, te_train, ids, dtype)
            with accelerator.accumulate(unet):
                pred = unet(noisy, t, ctx).sample
                target = noise if noise_sched.config.prediction_type == "epsilon" else noise_sched.get_velocity(z0, noise, t)
                loss = F.mse_loss(pred[:n_inst].float(), target[:n_inst].float())
                if cls is not None:
                    loss = loss + cfg.prior_loss_weight * F.mse_loss(pred[n_inst:].float(), target[n_inst:].float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(models.params, cfg.max_grad_norm)
                optimizer.step()
                lr_sched.step()
                optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.detach().item(), 6))
        pbar.update(1)
        pbar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_sched.get_last_lr()[0]:.2e}", refresh=False)
        done = step + 1
        if accelerator.is_main_process and (done % cfg.checkpoint_every == 0 or done == total):
            save_checkpoint(work, done, unet, te_train, optimizer, lr_sched, accelerator, losses, cfg.keep_checkpoints)
    pbar.close()
    return losses
