"""Pre-train the tiny base model on the prepared demo training images.

The tiny pipeline starts from random weights; SD1.5 starts from LAION. So that the LoRA stage
afterwards *specialises* a model that already draws lesions (as DreamBooth does with SD1.5),
the base_model stage first fits the VAE (reconstruction + a small KL term), then the UNet
(epsilon prediction) on the training images with one generic prompt, or, with a caption template
(`base_model.pretrain.caption`), each image with its own caption from its class and traits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from dermsynth.diffusion.data import augment, batch_indices, step_generator
from dermsynth.diffusion.tiny import training_scheduler
from dermsynth.params import Pretrain, defaults_from

GENERIC_PROMPT = "a dermoscopic image of a skin lesion"


@dataclass(frozen=True)
@defaults_from(Pretrain)
class PretrainConfig:
    vae_steps: int
    vae_lr: float
    # > 0: train on random crops of this size (4x cheaper at half the side). It transfers texture
    # but not the global tone: on 32 px crops the demo VAE decoded malignant lesions as light as
    # benign ones (centre brightness 74 vs 65 real), on full images 68 vs 65.
    vae_crop: int
    kl_weight: float
    unet_steps: int
    unet_lr: float
    caption: str
    batch_size: int
    cond_dropout: float
    seed: int = 0


def _cosine(opt: torch.optim.Optimizer, steps: int, warmup: int = 20) -> torch.optim.lr_scheduler.LambdaLR:
    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def pretrain_vae(pipe: StableDiffusionPipeline, images: torch.Tensor, cfg: PretrainConfig) -> list[float]:
    vae = pipe.vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = _cosine(opt, cfg.vae_steps)
    losses = []
    for step in (bar := tqdm(range(cfg.vae_steps), desc="base: VAE", mininterval=2.0)):
        g = step_generator(cfg.seed, step)
        x = augment(images[batch_indices(len(images), cfg.batch_size, step, cfg.seed)], g)
        c = cfg.vae_crop
        if c and c < x.shape[-1]:
            i, j = (int(v) for v in torch.randint(0, x.shape[-1] - c + 1, (2,), generator=g))
            x = x[:, :, i : i + c, j : j + c]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + cfg.kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    vae.eval()
    # SD scales latents to unit variance; a new VAE needs its own factor (SD1.5's is 0.18215).
    with torch.no_grad():
        lat = torch.cat([vae.encode(images[i : i + 64]).latent_dist.mean for i in range(0, len(images), 64)])
    vae.register_to_config(scaling_factor=float(1.0 / lat.std()))
    return losses


@torch.no_grad()
def encode_prompts(pipe: StableDiffusionPipeline, prompts: list[str]) -> torch.Tensor:
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids.to(pipe.text_encoder.device))[0]


def _contexts(pipe: StableDiffusionPipeline, prompts: list[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder states, the empty prompt's): one row shared by every image when all prompts are alike,
    else one row per image (each distinct prompt encoded once)."""
    distinct = sorted(set(prompts or [GENERIC_PROMPT]))
    states = encode_prompts(pipe, distinct + [""])
    if len(distinct) == 1:
        return states[:1], states[1:]
    return states[:-1][torch.tensor([distinct.index(p) for p in prompts])], states[-1:]


def pretrain_unet(pipe: StableDiffusionPipeline, images: torch.Tensor, cfg: PretrainConfig,
                  prompts: list[str] | None = None) -> list[float]:
    """Epsilon prediction on the images' latents (and their flips); `prompts`, one per image
    (`dermsynth.traits.captions`),
    condition each image on its own caption, None on GENERIC_PROMPT."""
    if prompts is not None and len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images")
    noise_sched = training_scheduler(pipe)
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(images[i : i + 64]).latent_dist.mean for i in range(0, len(images), 64)])
        latents = torch.cat([latents, latents.flip(3), latents.flip(2), latents.flip(2).flip(3)])  # flips, once
        latents = latents * pipe.vae.config.scaling_factor
    cond, uncond = _contexts(pipe, prompts)
    shared = len(cond) == 1
    if not shared:
        cond = cond.repeat(4, 1, 1)  # the flipped latents keep their images' captions
    unet = pipe.unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=1e-4)
    sched = _cosine(opt, cfg.unet_steps)
    losses = []
    for step in (bar := tqdm(range(cfg.unet_steps), desc="base: UNet", mininterval=2.0)):
        g = step_generator(cfg.seed + 1, step)
        idx = batch_indices(len(latents), cfg.batch_size, step, cfg.seed)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z0),), generator=g)
        drop = (torch.rand(len(z0), generator=g) < cfg.cond_dropout)[:, None, None]
        ctx = torch.where(drop, uncond, cond if shared else cond[idx])
        pred = unet(noise_sched.add_noise(z0, noise, t), t, ctx).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    unet.eval()
    return losses
