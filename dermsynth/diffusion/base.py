"""The base diffusion model: the tiny one built here, or a local SD1.5 (directory or single file).

Whatever the source, the base_model stage saves a standard diffusers StableDiffusionPipeline
directory to models/base/, so every later stage (and any user, with plain diffusers) loads the
same thing the same way.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from dermsynth.errors import UserError

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


class BaseModelError(UserError, RuntimeError):
    pass


def check_tokenizer(pipe: StableDiffusionPipeline, where: str) -> None:
    """Fail loudly on the silent failure of a tokenizer loaded from missing files.

    transformers builds a CLIPTokenizer with a 3-token default vocabulary when vocab.json and
    merges.txt are absent; every prompt then encodes to unknown tokens and the model ignores it.
    """
    n_tok, n_emb = len(pipe.tokenizer), pipe.text_encoder.config.vocab_size
    if n_tok < 100 or n_tok > n_emb:
        raise BaseModelError(
            f"{where}: tokenizer has {n_tok} tokens but the text encoder has {n_emb} embeddings; "
            "the tokenizer files (vocab.json, merges.txt) are missing or do not belong to this model")
    probe = pipe.tokenizer("a dermoscopic image").input_ids
    if len(set(probe[1:-1]) - {pipe.tokenizer.unk_token_id}) == 0:
        raise BaseModelError(f"{where}: the tokenizer maps a plain prompt to unknown tokens only")


def load_pipeline(path: str | Path, config: str | Path | None = None,
                  dtype: torch.dtype = torch.float32) -> StableDiffusionPipeline:
    """A local SD pipeline: a diffusers directory, or one .safetensors/.ckpt checkpoint.

    A single-file checkpoint carries weights only; `config` names a local diffusers directory
    of the same architecture (configs and tokenizer; weights not needed) since nothing can be
    fetched from the hub here.
    """
    p = Path(path)
    if not p.exists():
        raise BaseModelError(f"{p}: base model not found")
    common = dict(safety_checker=None, requires_safety_checker=False, dtype=dtype, local_files_only=True)
    if p.is_dir():
        if not (p / "model_index.json").is_file():
            raise BaseModelError(f"{p}: not a diffusers pipeline directory (no model_index.json)")
        pipe = StableDiffusionPipeline.from_pretrained(p, **common)
    elif p.suffix in SINGLE_FILE_SUFFIXES:
        if not config:
            raise BaseModelError(f"{p}: a single-file checkpoint needs base_model.config, a local diffusers "
                                 "directory with the SD1.5 configs and tokenizer (offline: nothing is downloaded)")
        pipe = StableDiffusionPipeline.from_single_file(str(p), config=str(config), **common)
    else:
        raise BaseModelError(f"{p}: expected a diffusers directory or a {'/'.join(SINGLE_FILE_SUFFIXES)} file")
    check_tokenizer(pipe, str(p))
    return pipe
