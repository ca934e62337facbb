"""Byte-stable files and fingerprints: the same content must give the same bytes, or DVC hashes change run to run.

safetensors writes a file's `__metadata__` in the random order of a Rust HashMap, so two saves of
the same tensors and metadata differ in their header (safetensors issue #584). `canonicalise`
rewrites that header with the metadata keys sorted; the header's length, the tensor offsets and the
data stay as they are.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path


def find_root(start: str | Path | None = None) -> Path:
    """The repository root: DVC_ROOT (DVC sets it in every stage, queued experiments included), else the
    nearest folder at or above `start` (default: the current one) holding `dvc.yaml`, else `start`.

    Every command resolves the project's files from here, so one run from `reports/` or `docs/` reads
    and writes the same places as one run from the root."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path(start or ".").resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file():
            return d
    return here


def write_json(path: str | Path, data: object, **dumps: object) -> Path:
    """`data` as JSON indented by 2 with a final newline, the one form of every report and record (so a
    diff shows what changed); parent folders made. `dumps`: json.dumps options (default=str, sort_keys)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2, **dumps) + "\n")
    return p


def canonicalise_safetensors(path: str | Path) -> None:
    p = Path(path)
    with p.open("r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        ordered = {"__metadata__": header.pop("__metadata__"), **header}
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # cannot happen for a reordering of the same JSON; never corrupt the file
            raise ValueError(f"{p}: canonical safetensors header longer than the original ({len(text)} > {n})")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))  # safetensors pads headers with spaces


def fingerprint(*parts: object) -> str:
    """12 hex digits naming a resumable state (a LoRA's work folder, a latent cache, a generation chunk) by
    what made it: JSON of the parts, so equal settings give the same name in every process."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def dir_fingerprint(path: Path) -> list:
    """Names, sizes and mtimes of a model directory: cheap, and changes whenever the model does."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return [(f.relative_to(p).as_posix() if p.is_dir() else f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
