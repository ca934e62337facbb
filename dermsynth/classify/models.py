"""timm classifiers by name, with offline pretrained weights from a local file."""
from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch

from dermsynth.contracts import model_slug  # noqa: F401 - where the classifier code finds it
from dermsynth.errors import UserFileError

log = logging.getLogger(__name__)


def create_classifier(name: str, img_size: int, pretrained_file: str = "", drop_rate: float = 0.0) -> torch.nn.Module:
    """Any timm model with a 2-class head (benign, malignant).

    `pretrained_file`: local weights (.safetensors or .pth/.bin, loaded weights_only) through
    timm's own pretrained machinery, which adapts the classifier head and, for ViTs, the
    position embeddings to `img_size`. Empty: random initialisation (nothing is downloaded).
    """
    kwargs: dict = {"num_classes": 2, "drop_rate": drop_rate}
    if pretrained_file:
        f = Path(pretrained_file)
        if not f.is_file():
            raise UserFileError(f"{f}: pretrained weights for {name} not found")
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(f.resolve())}}
    try:  # transformers (ViT, DeiT, BEiT, EVA, Swin) take the input size; CNNs do not need it
        model = timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError:
        model = timm.create_model(name, **kwargs)
    # A new 2-class head starts small. Some timm inits scale with 1/sqrt(num_classes) (EfficientNet,
    # MobileNet), which for 2 classes gives logits of std ~6 and a first-epoch loss of ~4.
    head = model.get_classifier()
    if isinstance(head, torch.nn.Linear):
        torch.nn.init.trunc_normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)
    return model


def gradcam_target_layer(model: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """(layer to hook, is_transformer): the last norm of a ViT-style model, else the last conv."""
    blocks = getattr(model, "blocks", None)
    if blocks is not None and len(blocks) and hasattr(blocks[-1], "norm1"):
        return blocks[-1].norm1, True
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("no convolution or transformer block to attach Grad-CAM to")
    return convs[-1], False
