"""A tiny Stable-Diffusion-architecture pipeline built from config, with no hub access.

Same classes as SD1.5 (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer,
PNDMScheduler), scaled down so that training and sampling run on a 2-core CPU: 64 px images,
a VAE with 4x downsampling (16x16x4 latents; SD1.5 has 8x), a two-level UNet and a two-layer text encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from tokenizers.pre_tokenizers import ByteLevel

from dermsynth.params import TinyArchitecture, defaults_from

# Words of the prompts the project writes; each becomes one token, any other text still
# tokenises (byte-level), just into more pieces.
WORDS = ("a dermoscopic dermoscopy image photo of sks zwx skin lesion benign malignant mole melanoma "
         "nevus blurry lowres low quality cartoon drawing text watermark close up").split()

# SD1.5's noise schedule: scaled_linear betas, 1000 training steps.
SD15_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@dataclass(frozen=True)
@defaults_from(TinyArchitecture)
class TinyConfig:
    """The tiny architecture (`base_model.tiny`) at one image size; `seed` draws the initial weights."""

    image_size: int = 64
    vae_channels: tuple[int, ...]
    unet_channels: tuple[int, ...]
    cross_attention_dim: int
    text_layers: int
    seed: int = 0


def build_tokenizer(words: tuple[str, ...] | list[str] = WORDS) -> CLIPTokenizer:
    """A byte-level BPE CLIP tokenizer whose merges turn each of `words` into a single token."""
    chars = sorted(ByteLevel.alphabet())  # the 256 byte-level symbols
    vocab: dict[str, int] = {}
    for tok in ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]:
        vocab.setdefault(tok, len(vocab))
    merges: list[tuple[str, str]] = []
    for w in sorted(set(words)):
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
            parts = [parts[0] + parts[1]] + parts[2:]
            vocab.setdefault(parts[0], len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def build_tiny_pipeline(cfg: TinyConfig = TinyConfig()) -> StableDiffusionPipeline:
    torch.manual_seed(cfg.seed)  # weight init is the only randomness here
    tokenizer = build_tokenizer()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=cfg.vae_channels, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * len(cfg.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(cfg.vae_channels),
        sample_size=cfg.image_size, norm_num_groups=8,
    )
    latent = cfg.image_size // 2 ** (len(cfg.vae_channels) - 1)
    unet = UNet2DConditionModel(
        sample_size=latent, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=cfg.unet_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(cfg.unet_channels) - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (len(cfg.unet_channels) - 1) + ("UpBlock2D",),
        cross_attention_dim=cfg.cross_attention_dim, attention_head_dim=8, norm_num_groups=16,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.cross_attention_dim, intermediate_size=64,
        num_hidden_layers=cfg.text_layers, num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = PNDMScheduler(**SD15_SCHEDULE, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def training_scheduler(pipe: StableDiffusionPipeline) -> DDPMScheduler:
    """The DDPM noise schedule matching the pipeline's own (what SD was trained with)."""
    return DDPMScheduler.from_config(pipe.scheduler.config)
