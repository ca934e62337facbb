"""The plan of a synthetic set: every image to make, with everything needed to make it again.

Image i of a class gets its sampler (round robin), its number of steps and its seed as pure functions
of (data_seed, class, i), and, where `generate.attributes` asks for traits, the traits and a prompt
that names them (dermsynth.traits): so a resumed, a re-run or a multi-process generation plans the
same rows, and docs/contracts.md's metadata.csv is this table once the images exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import torch

from dermsynth.contracts import METADATA_COLUMNS
from dermsynth.params import Generate, defaults_from
from dermsynth.precision import resolve
from dermsynth.traits import caption, requested_columns


@dataclass(frozen=True)
@defaults_from(Generate)
class GenerateConfig:
    n_per_class: int
    classes: tuple[str, ...]
    samplers: tuple[str, ...]
    steps_min: int
    steps_max: int
    guidance_scale: float
    prompt: str
    negative_prompt: str
    batch_size: int
    threads: int
    dtype: str
    channels_last: bool
    compile: bool
    max_reseeds: int
    seed: int = 0


def image_seed(seed: int, class_index: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, class_index, index]).generate_state(1)[0])


def device_and_dtype(cfg: GenerateConfig) -> tuple[str, torch.dtype]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, pipeline_dtype(cfg.dtype)


def plan(cfg: GenerateConfig, base_model: str, lora_dirs: dict[str, str], out_dir: str,
         requested: dict[str, dict[str, list[str]]] | None = None) -> pd.DataFrame:
    """Every image to make, with everything needed to make it again (metadata contract: docs/contracts.md).

    `requested[label][trait][i]`: the trait image i of the class asks for (dermsynth.traits.request), put
    into its prompt (`{skin_tone}`, `{site}` in generate.prompt) and its `requested_<trait>` column."""
    device, dtype = device_and_dtype(cfg)
    rows = []
    for ci, label in enumerate(cfg.classes):
        for i in range(cfg.n_per_class):
            rng = np.random.default_rng([cfg.seed, ci, i, 1])
            image_id = f"syn_{label}_{i:05d}"
            asked = {t: v[i] for t, v in (requested or {}).get(label, {}).items()}
            rows.append({
                "image_id": image_id, "label": label,
                "prompt": caption(cfg.prompt, label, asked) if requested else cfg.prompt.format(label=label),
                "negative_prompt": cfg.negative_prompt, "sampler": cfg.samplers[i % len(cfg.samplers)],
                "steps": int(rng.integers(cfg.steps_min, cfg.steps_max + 1)), "cfg": cfg.guidance_scale,
                "seed": image_seed(cfg.seed, ci, i), "lora": lora_dirs[label], "base_model": base_model,
                "path": f"{out_dir}/images/{label}/{image_id}.png", "device": device, "dtype": str(dtype).split(".")[-1],
                # where it came from (an imported set says its release here): the LoRAs' folder; the PNG's
                # sha256 is known once it is written (_publish)
                "source": PurePosixPath(lora_dirs[label]).parent.as_posix(), "source_file": "", "sha256": "",
            } | {f"requested_{t}": v for t, v in asked.items()})
    df = pd.DataFrame(rows, columns=METADATA_COLUMNS + requested_columns(requested))
    # Fixed chunks: same (class, sampler, steps), in index order, cut every batch_size images.
    df["_order"] = range(len(df))
    df = df.sort_values(["label", "sampler", "steps", "_order"], kind="stable")
    df["chunk"] = (df.groupby(["label", "sampler", "steps"]).cumcount() // cfg.batch_size).astype(str)
    df["chunk"] = df["label"] + "/" + df["sampler"] + "/" + df["steps"].astype(str) + "/" + df["chunk"]
    return df.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def pipeline_dtype(name: str) -> torch.dtype:
    return resolve(name, "diffusion", torch.cuda.is_available(), "generate.dtype")
