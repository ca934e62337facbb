"""One precision policy for every model the pipeline runs: what `auto` means, and the names' dtypes.

`auto` is full fp32 on CPU (half precision there is slower and rounds differently). On CUDA it is
fp16 for the diffusion model (the dtype SD1.5's weights are released and usually run in) and bf16
for the classifiers (fp16's range needs loss scaling in training; bf16's does not).
"""
from __future__ import annotations

import torch

from dermsynth.errors import UserValueError

DTYPES = {"no": torch.float32, "fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
          "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
AUTO_ON_CUDA = {"diffusion": torch.float16, "classifier": torch.bfloat16}


def resolve(name: str, work: str, cuda: bool, key: str = "dtype") -> torch.dtype:
    """The dtype `name` (auto, fp16, bf16, fp32 / no, or torch's spelling) means for `work` (diffusion,
    classifier) on a machine with or without CUDA; `key` names the parameter in the error."""
    if name == "auto":
        return AUTO_ON_CUDA[work] if cuda else torch.float32
    if name not in DTYPES:
        raise UserValueError(f"{key}: unknown dtype {name!r}; use auto, fp16, bf16 or fp32")
    return DTYPES[name]


def accelerate_name(dtype: torch.dtype) -> str:
    """accelerate's `mixed_precision` for a dtype: fp16, bf16, or no (fp32)."""
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "no")
