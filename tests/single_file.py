"""Write a diffusers SD pipeline as one original-layout (LDM) checkpoint, .safetensors or .ckpt.

The inverse of diffusers' `from_single_file`, generalised from diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py (hard-coded there for SD1.5's four
blocks of two layers) to any block count and layers per block, so the tiny model round-trips
too. Test code: it makes the tiny stand-ins of single-file SD1.5 checkpoints that base_model loads.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from dermsynth.errors import UserValueError


_UNET_TOP = {  # diffusers name -> LDM name
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
}
_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _unet_prefixes(unet) -> list[tuple[str, str]]:
    cfg = unet.config
    L, nb = cfg.layers_per_block, len(cfg.block_out_channels)
    out = []
    for i in range(nb):
        for j in range(L):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(L + 1) * i + j + 1}.0."))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(L + 1) * i + j + 1}.1."))
        if i < nb - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(L + 1) * (i + 1)}.0.op."))
        up_has_attn = "CrossAttn" in cfg.up_block_types[i]
        for j in range(L + 1):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(L + 1) * i + j}.0."))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(L + 1) * i + j}.1."))
        if i < nb - 1:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(L + 1) * i + L}.{2 if up_has_attn else 1}."))
    out.append(("mid_block.attentions.0.", "middle_block.1."))
    out += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    return out


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    prefixes = _unet_prefixes(unet)
    out = {}
    for k, v in unet.state_dict().items():
        name = k
        for hf, sd in _UNET_TOP.items():
            if name.startswith(hf + "."):
                name = sd + name[len(hf):]
        for hf, sd in prefixes:
            if name.startswith(hf):
                rest = name[len(hf):]
                if ".resnets." in hf:
                    for a, b in _RESNET:
                        rest = rest.replace(a, b) if rest.startswith(a) else rest
                name = sd + rest
                break
        out["model.diffusion_model." + name] = v
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    nb, L = len(vae.config.block_out_channels), vae.config.layers_per_block
    pairs = [("conv_shortcut", "nin_shortcut"), ("conv_norm_out", "norm_out"), ("mid_block.attentions.0.", "mid.attn_1.")]
    for i in range(nb):
        pairs += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(L)]
        pairs += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{nb - 1 - i}.block.{j}.") for j in range(L + 1)]
        if i < nb - 1:
            pairs += [(f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample."),
                      (f"up_blocks.{i}.upsamplers.0.", f"up.{nb - 1 - i}.upsample.")]
    pairs += [(f"mid_block.resnets.{i}.", f"mid.block_{i + 1}.") for i in range(2)]
    attn = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out = {}
    for k, v in vae.state_dict().items():
        name = k
        for hf, sd in pairs:
            name = name.replace(hf, sd)
        if "mid.attn_1." in name:
            for hf, sd in attn:
                name = name.replace(hf, sd)
            if v.ndim == 2:  # linear in diffusers, 1x1 conv in LDM
                v = v.reshape(*v.shape, 1, 1)
        out["first_stage_model." + name] = v
    return out


def to_ldm_state_dict(pipe: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    # SD1 checkpoints hold the HF CLIPTextModel under "text_model." (flattened away in transformers 5)
    te = {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
          for k, v in pipe.text_encoder.state_dict().items()}
    sd = {**unet_to_ldm(pipe.unet), **vae_to_ldm(pipe.vae), **te}
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_single_file(pipe: StableDiffusionPipeline, path: str | Path) -> Path:
    path = Path(path)
    sd = to_ldm_state_dict(pipe)
    if path.suffix == ".safetensors":
        save_file(sd, path)
    elif path.suffix == ".ckpt":
        torch.save({"state_dict": sd}, path)
    else:
        raise UserValueError(f"{path}: use .safetensors or .ckpt")
    return path
