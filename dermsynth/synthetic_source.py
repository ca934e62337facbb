"""What `generate.source` may name: the pipeline's own LoRAs, or a released synthetic set to import.

A leaf module (no torch, no pydantic): the params schema checks a source with it before any stage
runs, and the import (dermsynth.diffusion.released) and the cards read the same rules.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


LORA_SOURCE = "models/lora"  # generate.source's default: the LoRAs train_lora@<class> makes, sampled as always
# the pipeline's model outputs: a released set kept below them would be deleted or hashed as their content
MODEL_OUTPUTS = "models"
LORA_GENERATOR = "lora"  # the `generator` condition of runs on the LoRAs' fixed-prompt images (and of runs before it)


def is_lora_source(source: str) -> bool:
    """Whether `generate.source` names the pipeline's own LoRAs (generate) rather than a released set (import)."""
    return source.strip() != "" and PurePosixPath(os.path.normpath(source.strip())).as_posix() == LORA_SOURCE


def generator_condition(source: str, attributes: dict | None = None) -> str:
    """Where a run's synthetic images came from, as a study condition (the MLflow param `generator`):
    `lora` (the LoRAs, one fixed prompt per class), `lora skin_tone=uniform` (the LoRAs asked for traits by
    `generate.attributes`, traits sorted) or the released set's path. Two generators at one ratio are two
    conditions of a study, each against its own ratio-0 runs."""
    if not is_lora_source(source):
        return PurePosixPath(os.path.normpath(source.strip())).as_posix()
    fmt = lambda spec: spec if isinstance(spec, str) else (  # noqa: E731
        "{" + ", ".join(f"{k}: {float(v):g}" for k, v in sorted(spec.items())) + "}")
    return " ".join([LORA_GENERATOR] + [f"{t}={fmt(spec)}" for t, spec in sorted((attributes or {}).items())])


def visible_files(folder: Path):
    """The files below `folder`, hidden ones (`.DS_Store`, `._x.png`) and hidden folders left out, sorted."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                yield Path(dirpath) / f


def source_problems(source: str, classes: list[str] | tuple[str, ...], root: Path,
                    outputs: dict[str, str] | None = None) -> list[str]:
    """What makes `generate.source` unusable as a released set, one line each (empty: usable).

    Inside the repository only, as a relative path (the set itself may be a link to another disk, as
    data/raw often is): then dvc.lock, metadata.csv and every clone name the same place, `dvc add`
    versions it and queued experiments find it. `outputs`: the paths.* block, which it may not overlap."""
    s = source.strip()
    lora_hint = f"{LORA_SOURCE} (the trained LoRAs), a folder with one subfolder per class or a CSV file"
    if not s:
        return [f"is empty; name {lora_hint}"]
    if Path(s).is_absolute():
        return [f"{s!r} is an absolute path; name a path inside the repository, e.g. data/external/"
                f"{Path(s).name or 'set'} (a link to {s} is fine: `ln -s {s} data/external/{Path(s).name or 'set'}`)"]
    root = root.resolve()
    rel = PurePosixPath(os.path.normpath(s))
    if rel.parts[0] == ".." or rel.as_posix() == ".":
        return [f"{s!r} lies outside the repository {root} or is its root; put the set (or a link to it) under "
                "data/external/"]
    if rel.parts[0] in (".git", ".dvc"):
        return [f"{s!r} is inside {rel.parts[0]}/"]
    owned = {f"paths.{k} ({v})": v for k, v in (outputs or {}).items() if k != "raw"}
    owned[f"{MODEL_OUTPUTS}/ (the pipeline's models)"] = MODEL_OUTPUTS
    for what, out in owned.items():
        o = PurePosixPath(os.path.relpath(os.path.normpath(root / out), root))
        if o == rel or o in rel.parents:
            return [f"{s!r} lies inside {what}, which the pipeline deletes and rebuilds; keep the released set "
                    "apart, e.g. under data/external/"]
        if rel in o.parents:
            return [f"{s!r} holds {what}, an output of the pipeline; name the released set's own folder"]
    p = root / rel
    classes_hint = ", ".join(f"{c}/" for c in classes)
    if not p.exists():
        return [f"{s!r} does not exist (a released set is a folder with one subfolder per class, {classes_hint} "
                "or a CSV file of path,label rows)"]
    if p.is_file():
        if p.suffix.lower() != ".csv":
            return [f"{s!r} is a file but not a .csv (path,label rows); or name a folder with one subfolder per "
                    f"class ({classes_hint})"]
        if p.stat().st_size == 0:
            return [f"{s!r} is an empty file (a CSV of path,label rows)"]
        return []
    if not p.is_dir():
        return [f"{s!r} is neither a folder nor a file"]
    missing = [c for c in classes if not (p / c).is_dir()]
    if missing:
        return [f"{s!r} has no {' or '.join(c + '/' for c in missing)} folder: a released set holds one subfolder "
                f"per class of generate.classes ({classes_hint})"]
    empty = [c for c in classes if next(visible_files(p / c), None) is None]
    if empty:
        return [f"{s!r}: {' and '.join(f'{s}/{c}/' for c in empty)} hold{'s' if len(empty) == 1 else ''} no files"]
    return []
