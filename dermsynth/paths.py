"""Where the pipeline may write: every `paths.*` output inside the repository, and nothing deleted that
the pipeline did not make.

The DVC outputs (`FIXED`) are named literally in dvc.yaml and the schema refuses any other value: `dvc
exp run -S paths.prepared=configs` would otherwise have DVC check the workspace out with `configs` as the
stage's output, which deletes what `configs` holds before any stage (and so any check) runs. For the
paths that may still change (`paths.work`; and what a library caller passes) and as a second guard, the
rules below, checked by the params schema (so `dermsynth check`, the `params` stage that runs before
every other and each stage refuse the same):

- every output resolves inside the repository, is not its root, `.git` or `.dvc`, and no output
  lies inside another output or the raw data (or holds them);
- no output but `paths.reports` holds a file tracked by git; `paths.reports` may (the committed
  reports), but only when it is a reports folder of this project (it holds `MARKER`);
- an existing folder that DVC or a stage replaces whole (`REPLACED`) must be one the pipeline made:
  it holds `MARKER` (written by `replace_output_dir`; `.dvcignore` keeps it out of DVC's hashes), or
  `dvc.lock` records it as an output (restored by DVC), or it is empty.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from dermsynth.errors import UserFileError
from dermsynth.files import find_root

MARKER = ".dermsynth-output"
OUTPUTS = ("interim", "prepared", "reports", "synthetic", "filter", "work", "testsets")
FIXED = ("interim", "prepared", "reports", "synthetic", "filter", "testsets")  # dvc.yaml's outputs
REPLACED = ("prepared", "synthetic", "testsets")  # folders DVC (and their stage) delete whole before a run
FORBIDDEN = (".git", ".dvc")


def _tracked(root: Path, paths: list[Path]) -> dict[Path, str]:
    """For each path, one git-tracked file below it ("" if none); empty when git cannot tell."""
    rels = [p.relative_to(root).as_posix() for p in paths]
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", *rels], capture_output=True,
                             timeout=30, check=True).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return {}  # not a git checkout (an exported tree): nothing is tracked
    # DVC writes a .gitignore beside its outputs for git to skip them: that one is the pipeline's own
    files = [f for f in out.split("\0") if f and Path(f).name != ".gitignore"]
    return {p: next((f for f in files if f == r or f.startswith(r + "/")), "") for p, r in zip(paths, rels)}


def _dvc_outputs(root: Path) -> set[Path]:
    """Every output path `dvc.lock` records (DVC restores those, without MARKER)."""
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return set()
    return {(root / o["path"]).resolve() for s in (lock.get("stages") or {}).values() for o in s.get("outs") or []
            if isinstance(o, dict) and "path" in o}


def _nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def path_problems(paths: dict[str, str], root: Path) -> list[str]:
    """One `paths.<key>: problem` line per rule a path breaks (see the module's docstring)."""
    root = root.resolve()
    where = {k: (root / paths[k]).resolve() for k in OUTPUTS}
    problems = []
    for k, p in where.items():
        if p == root:
            problems.append(f"paths.{k}: {paths[k]!r} is the repository root (outputs need a folder of their own)")
        elif root not in p.parents:
            problems.append(f"paths.{k}: {paths[k]!r} resolves to {p}, outside the repository {root} "
                            "(outputs stay inside it)")
        elif p.relative_to(root).parts[0] in FORBIDDEN:
            problems.append(f"paths.{k}: {paths[k]!r} is inside {p.relative_to(root).parts[0]}/")
    where = {k: p for k, p in where.items() if not any(x.startswith(f"paths.{k}:") for x in problems)}
    raw = (root / paths["raw"]).resolve()
    keys = list(where)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if _nested(where[a], where[b]):
                problems.append(f"paths.{a}: {paths[a]!r} and paths.{b}: {paths[b]!r} overlap (each output needs a "
                                "folder of its own)")
        if _nested(where[a], raw):
            problems.append(f"paths.{a}: {paths[a]!r} overlaps the raw data paths.raw: {paths['raw']!r}")
    tracked = _tracked(root, list(where.values())) if where else {}
    for k, p in where.items():
        f = tracked.get(p, "")
        if f and k != "reports":
            problems.append(f"paths.{k}: {paths[k]!r} holds files tracked by git (e.g. {f}); the pipeline deletes "
                            "and rewrites this folder, so name one of its own")
        elif f and not (p / MARKER).is_file():
            problems.append(f"paths.{k}: {paths[k]!r} holds files tracked by git (e.g. {f}) and is not a reports "
                            f"folder of this project (no {MARKER} in it); name a new folder")
    recorded = _dvc_outputs(root)
    for k in (k for k in REPLACED if k in where):
        p = where[k]
        if tracked.get(p):
            continue  # said above
        if p.is_dir() and any(p.iterdir()) and not (p / MARKER).is_file() and p not in recorded:
            problems.append(f"paths.{k}: {p} already holds files the pipeline did not make (no {MARKER}, not an "
                            "output in dvc.lock), and it would be deleted; move them or name a new folder")
        elif p.exists() and not p.is_dir():
            problems.append(f"paths.{k}: {p} is a file, not a folder")
    return problems


def replace_output_dir(path: str | Path, key: str) -> Path:
    """Empty the output folder `path` (of params key `key`) for a stage to refill: only a folder the
    pipeline made (MARKER, or an output DVC recorded) is deleted; it comes back holding MARKER."""
    p = Path(path)
    if p.exists():
        root = find_root()
        if p.is_dir() and not any(p.iterdir()):
            pass
        elif not p.is_dir() or not ((p / MARKER).is_file() or p.resolve() in _dvc_outputs(root)):
            raise UserFileError(f"{key}: {p} exists and was not made by this pipeline (no {MARKER} in it); "
                                "it is left as it is: move it away or name another folder")
        shutil.rmtree(p)
    p.mkdir(parents=True)
    mark_output_dir(p)
    return p


def mark_output_dir(path: str | Path) -> None:
    (Path(path) / MARKER).write_text("made by the dermsynth pipeline: it may delete and rebuild this folder\n")
