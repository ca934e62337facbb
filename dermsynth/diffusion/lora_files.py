"""A LoRA's files: resumable training checkpoints and the diffusers export.

A checkpoint holds only what exact resumption needs (dermsynth.diffusion.lora): the adapters' weights
(safetensors), the optimizer, LR-scheduler and grad-scaler states (`torch.load(weights_only=True)`),
and the step with the loss curve so far; `state.json` is written last, so a checkpoint cut off
half-written is never resumed from.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from dermsynth.files import canonicalise_safetensors

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


def checkpoints(work: Path) -> list[Path]:
    done = [d for d in work.glob("checkpoint-*") if (d / "state.json").is_file()]
    return sorted(done, key=lambda d: int(d.name.split("-")[1]))


def _lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}


def save_checkpoint(work: Path, step: int, unet, text_encoder, optimizer, lr_sched, accelerator, losses, keep: int) -> None:
    tmp = work / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_lora_state(accelerator.unwrap_model(unet)), tmp / "unet_lora.safetensors")
    if text_encoder is not None:
        save_file(_lora_state(accelerator.unwrap_model(text_encoder)), tmp / "text_encoder_lora.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(lr_sched.state_dict(), tmp / "scheduler.pt")
    if accelerator.scaler is not None:
        torch.save(accelerator.scaler.state_dict(), tmp / "scaler.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))  # written last: marks complete
    final = work / f"checkpoint-{step}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoints(work)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(ckpt: Path, unet, text_encoder, optimizer, lr_sched, accelerator) -> tuple[int, list[float]]:
    set_peft_model_state_dict(accelerator.unwrap_model(unet), load_file(ckpt / "unet_lora.safetensors"))
    if text_encoder is not None:
        set_peft_model_state_dict(accelerator.unwrap_model(text_encoder), load_file(ckpt / "text_encoder_lora.safetensors"))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    lr_sched.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
    if accelerator.scaler is not None and (ckpt / "scaler.pt").is_file():
        accelerator.scaler.load_state_dict(torch.load(ckpt / "scaler.pt", weights_only=True))
    state = json.loads((ckpt / "state.json").read_text())
    return int(state["step"]), list(state["losses"])


def _adapter_metadata(model) -> dict:
    """peft's config with its sets sorted: a set's order varies between runs, and the file must not."""
    return {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in model.peft_config["default"].to_dict().items()}


def export_lora(out_dir: Path, unet, text_encoder=None) -> Path:
    """The diffusers LoRA format (`pipe.load_lora_weights(out_dir)`), with adapter metadata."""
    out_dir.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out_dir,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        text_encoder_lora_layers=(convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder))
                                  if text_encoder is not None else None),
        unet_lora_adapter_metadata=_adapter_metadata(unet),
        text_encoder_lora_adapter_metadata=_adapter_metadata(text_encoder) if text_encoder is not None else None,
        safe_serialization=True,
    )
    canonicalise_safetensors(out_dir / LORA_WEIGHTS)  # same LoRA, same bytes (the DVC hash)
    return out_dir / LORA_WEIGHTS
