"""Image embeddings for the audit: a trained classifier's backbone (offline; Inception weights
cannot be downloaded here), wrapped as the torch feature extractor torchmetrics' FID/KID accept."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from dermsynth.classify.train import TrainConfig, load_classifier


class BackboneFeatures(torch.nn.Module):
    """uint8 (N, 3, H, W) images -> (N, D) pooled pre-logit features of a timm model."""

    def __init__(self, model: torch.nn.Module, img_size: int, mean, std):
        super().__init__()
        self.model, self.img_size = model.eval(), img_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[-1] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bicubic", align_corners=False)
        x = (x - self.mean) / self.std
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True).flatten(1)


def load_backbone(classifier_dir: str | Path) -> BackboneFeatures:
    cfg = TrainConfig(**json.loads((Path(classifier_dir) / "config.json").read_text())["train"])
    model = load_classifier(classifier_dir, cfg).cpu()
    dc = model.pretrained_cfg
    return BackboneFeatures(model, cfg.img_size, dc.get("mean", (0.5,) * 3), dc.get("std", (0.5,) * 3))


def load_uint8(paths: list[str], root: str | Path = ".", size: int | None = None) -> torch.Tensor:
    arrs = []
    for p in paths:
        im = Image.open(Path(root) / p).convert("RGB")
        if size and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        arrs.append(np.asarray(im))
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def embed(extractor: BackboneFeatures, paths: list[str], root: str | Path = ".", batch: int = 256,
          desc: str = "embeddings") -> np.ndarray:
    out = []
    for i in tqdm(range(0, len(paths), batch), desc=desc, mininterval=2.0):
        out.append(extractor(load_uint8(paths[i : i + batch], root)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)
