"""Export a trained LoRA for AUTOMATIC1111 / ComfyUI (kohya-ss safetensors).

diffusers does the key conversion (diffusers -> PEFT -> kohya); what it does not do is keep
alpha: `convert_state_dict_to_kohya` writes alpha = rank, which silently rescales a LoRA trained
with alpha != rank by rank/alpha. The true alpha comes from the adapter metadata saved with it.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers.utils import convert_all_state_dict_to_peft, convert_state_dict_to_kohya
from safetensors import safe_open
from safetensors.torch import save_file

from dermsynth.diffusion.lora_files import LORA_WEIGHTS
from dermsynth.errors import UserFileError, UserValueError
from dermsynth.files import canonicalise_safetensors


def read_lora(lora: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the adapter metadata of a diffusers LoRA (directory or file)."""
    f = Path(lora)
    f = f / LORA_WEIGHTS if f.is_dir() else f
    if not f.is_file():
        raise UserFileError(f"{f}: no LoRA weights")
    with safe_open(f, "pt") as sf:
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}
        meta = json.loads((sf.metadata() or {}).get("lora_adapter_metadata", "{}"))
    return tensors, meta


def to_kohya(lora: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors, meta = read_lora(lora)
    kohya = convert_state_dict_to_kohya(convert_all_state_dict_to_peft(tensors))
    for key in [k for k in kohya if k.endswith(".alpha")]:
        component = "text_encoder" if key.startswith("lora_te") else "unet"
        alpha = meta.get(f"{component}.lora_alpha")
        if alpha is not None:
            kohya[key] = torch.tensor(float(alpha))
    rank = meta.get("unet.r", "")
    info = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(meta.get("unet.lora_alpha", rank)), "ss_base_model_version": "sd_v1",
            "dermsynth_source": str(lora)}
    return kohya, info


def export_a1111(lora: str | Path, out_file: str | Path) -> Path:
    """Write `out_file` (.safetensors) that AUTOMATIC1111 and ComfyUI load as a LoRA."""
    out = Path(out_file)
    if out.suffix != ".safetensors":
        raise UserValueError(f"{out}: A1111/ComfyUI LoRAs are .safetensors files")
    kohya, info = to_kohya(lora)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in kohya.items()}, out, metadata=info)
    canonicalise_safetensors(out)
    return out
