"""Stable Diffusion 1.5's architecture with random weights, for benchmarks without a checkpoint.

The configs are SD1.5's published ones (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M);
only the weights are missing, which does not change the cost of a step.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dermsynth.diffusion.tiny import SD15_SCHEDULE, build_tokenizer


def build_sd15_random(image_size: int = 512, dtype: torch.dtype = torch.float32) -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        sample_size=image_size // 8, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=image_size,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    tokenizer = build_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(**SD15_SCHEDULE, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    return pipe.to(dtype=dtype)
