"""The audit's fixed feature space: one embedder that no ratio or classifier seed changes.

Either standard weights from a local file (`audit.features`: e.g. timm's inception_v3 or a
DINOv2 ViT, loaded through timm's pretrained machinery; nothing is downloaded), or, without one,
a timm model trained once on the real training images only (its own DVC stage). Features are
the pooled pre-logit activations.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from dermsynth.classify.train import TrainConfig, load_classifier
from dermsynth.errors import UserFileError
from dermsynth.files import write_json


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


def _wrap(model: torch.nn.Module, img_size: int) -> BackboneFeatures:
    dc = model.pretrained_cfg
    return BackboneFeatures(model.cpu().eval(), img_size, dc.get("mean", (0.5,) * 3), dc.get("std", (0.5,) * 3))


def load_backbone(model_dir: str | Path) -> BackboneFeatures:
    """The embedder saved in `model_dir` (by `build_feature_model` or a classifier's train stage)."""
    conf = json.loads((Path(model_dir) / "config.json").read_text())
    if conf.get("kind") == "pretrained":
        return _wrap(pretrained_embedder(conf["model"], conf["file"], conf["img_size"]), conf["img_size"])
    cfg = TrainConfig(**conf["train"])
    return _wrap(load_classifier(model_dir, cfg), cfg.img_size)


def pretrained_embedder(name: str, weights: str | Path, img_size: int) -> torch.nn.Module:
    """A timm model with standard weights from a local file (safetensors or weights_only pickles)."""
    import timm

    f = Path(weights)
    if not f.is_file():
        raise UserFileError(f"{f}: audit.features weights for {name} not found")
    kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(f.resolve())}, "num_classes": 0}
    try:  # ViTs take the input size (position embeddings are resampled); CNNs do not need it
        return timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError:
        return timm.create_model(name, **kwargs)


def build_feature_model(manifest, out_dir: str | Path, model: str, img_size: int, epochs: int, seed: int,
                        weights: str = "", root: str | Path = ".") -> dict:
    """The fixed embedder in `out_dir`: local standard weights if given, else trained on real images only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if weights:
        pretrained_embedder(model, weights, img_size)  # fails here, clearly, if the file does not load
        conf = {"kind": "pretrained", "model": model, "file": str(weights), "img_size": img_size}
        write_json((out / "config.json"), conf)
        return conf
    from dermsynth.classify.train import train_classifier

    cfg = TrainConfig(model=model, img_size=img_size, epochs=epochs, seed=seed)
    summary = train_classifier(manifest[manifest.split == "train"], manifest[manifest.split == "val"], cfg, out, root=root)
    summary.pop("seconds", None), summary.pop("images_per_second", None)  # timings would make the output vary
    conf = {"kind": "trained_on_real", "train": vars(cfg), "summary": summary}
    write_json((out / "config.json"), conf)
    return conf


def describe(model_dir: str | Path) -> str:
    conf = json.loads((Path(model_dir) / "config.json").read_text())
    if conf.get("kind") == "pretrained":
        return f"pooled features of {conf['model']} with the standard weights in {Path(conf['file']).name}"
    return (f"pooled pre-logit features of a {conf['train']['model']} trained once on the real training images "
            "only (no local standard embedder given in audit.features)")


def load_uint8(paths: list[str], root: str | Path = ".", size: int | None = None) -> torch.Tensor:
    arrs = []
    for p in paths:
        im = Image.open(Path(root) / p).convert("RGB")
        if size and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        arrs.append(np.asarray(im))
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def embed(extractor: BackboneFeatures, paths: list[str], root: str | Path = ".", batch: int = 256,
          desc: str = "embeddings", transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """(N, D) features of the images at `paths`; `transform` maps each uint8 batch first (e.g. through a VAE)."""
    out = []
    for i in tqdm(range(0, len(paths), batch), desc=desc, mininterval=2.0):
        images = load_uint8(paths[i : i + batch], root)
        out.append(extractor(transform(images) if transform else images).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)
