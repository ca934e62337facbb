"""`dermsynth check`: will this params file run here? Parameters, data, models, weights, disk.

Everything is read, nothing is written or loaded in full: metadata tables (not images), model
configs and tokenizer files (not weights), safetensors headers. The answer is a short table, and
every problem as one `key: problem` line (then exit 1).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermsynth.errors import UserError

# PNG bytes per pixel of the prepared and generated images (the demo's measured 1.2-1.6, rounded up)
PNG_BYTES_PER_PIXEL = 1.6
SD15_FP32_BYTES = 4.3e9  # models/base holds the base model in fp32 safetensors
TOKENIZER_FILES = ("vocab.json", "merges.txt")
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def table(self) -> str:
        w = max(len(k) for k, _ in self.rows) if self.rows else 0
        return "\n".join(f"  {k:<{w}}  {v}" for k, v in self.rows)


def _raw(params: dict[str, Any], rep: Report) -> int:
    """Items per raw archive (from the metadata tables; images are decoded by ingest)."""
    from dermsynth.data.ingest import SOURCES, detect_sources, unrecognised_folders
    from dermsynth.data.records import by_choice
    from dermsynth.data.sources import isic_archive

    raw = Path(params["paths"]["raw"])
    if not raw.is_dir():
        rep.problems.append(f"paths.raw: {raw} does not exist (run `dvc pull data.dvc`, or point it at your archives)")
        return 0
    found = detect_sources(raw)
    # a folder no reader recognises: ingest fails on one holding images, and names the others
    for u in unrecognised_folders(raw, found):
        if u.images:
            rep.problems.append(f"paths.raw: {u.message(raw)}")
        else:
            rep.rows.append(("unrecognised", f"{raw / u.folder}: no reader recognises it (no image files; ingest "
                             "names it in reports/ingest.json and goes on)"))
    if not found:
        rep.problems.append(f"paths.raw: no archive under {raw} (expected folders {', '.join(SOURCES)} with their "
                            "metadata files)")
        return 0
    total, parts = 0, []
    for name in found:
        try:
            if name == isic_archive.NAME:
                res = isic_archive.read(raw / name, raw, isic_archive.ArchivePolicy.from_params(params["ingest"]))
                # what each download holds, so that a wrong search or a policy that sets most aside shows here
                rep.rows += [("isic_archive", line) for line in isic_archive.describe(raw / name, raw)]
            else:
                res = SOURCES[name].read(raw / name, raw)
        except UserError as e:
            rep.problems.append(f"paths.raw: {e}")
            continue
        n = len(res.records)
        total += n
        chosen = sum(by_choice(q.reason) for q in res.quarantined)
        broken = len(res.quarantined) - chosen
        notes = [f"+{broken} unusable rows"] * bool(broken) + [f"+{chosen} set aside by choice"] * bool(chosen)
        parts.append(f"{name} {n}" + (f" ({', '.join(notes)})" if notes else ""))
    rep.rows.append(("raw data", f"{raw}: " + ", ".join(parts)))
    return total


def _external(params: dict[str, Any], rep: Report) -> None:
    """Each external test set: its folder, the layout its files say, the rows it holds (metadata only)."""
    from dermsynth.data.sources import external
    from dermsynth.data.sources.isic_archive import ArchivePolicy
    from dermsynth.data.testsets import external_root

    root = external_root(params["paths"]["raw"])
    if not Path(params["paths"]["raw"]).is_dir():
        return  # said once, for paths.raw
    for name, s in params["evaluate"]["external"].items():
        folder, key = root / s["path"], f"evaluate.external.{name}"
        if not folder.is_dir():
            rep.problems.append(f"{key}: {folder} does not exist (put the {s['layout']} download there, then "
                                "`dvc commit data.dvc`)")
            continue
        if (seen := external.detect(folder)) != s["layout"]:
            rep.problems.append(f"{key}: {folder} does not look like layout {s['layout']!r} ("
                                + (f"its files are those of {seen!r})" if seen else "no metadata file of any layout)"))
            continue
        try:
            res = external.read(s["layout"], folder, root, name, ArchivePolicy.from_params(params["ingest"]))
        except UserError as e:
            rep.problems.append(f"{key}: {e}")
            continue
        labels = {lab: sum(r.label == lab for r in res.records) for lab in ("benign", "malignant")}
        rep.rows.append((f"external {name}", f"{folder}: {s['layout']}, {len(res.records)} images "
                         f"({labels['benign']} benign, {labels['malignant']} malignant)"
                         + (f", +{len(res.quarantined)} unusable rows" if res.quarantined else "")))


def _diffusers_dir(d: Path, key: str, rep: Report, weights: bool) -> None:
    """A diffusers SD directory: model_index.json, each component's config, the tokenizer files."""
    if not (d / "model_index.json").is_file():
        rep.problems.append(f"{key}: {d} has no model_index.json (not a diffusers pipeline directory)")
        return
    for comp in COMPONENTS:
        cfg = d / comp / ("scheduler_config.json" if comp == "scheduler" else
                          "tokenizer_config.json" if comp == "tokenizer" else "config.json")
        try:
            json.loads(cfg.read_text())
        except (OSError, ValueError) as e:
            rep.problems.append(f"{key}: {cfg}: {type(e).__name__}: {e}")
    tok = d / "tokenizer"
    if not (tok / "tokenizer.json").is_file() and not all((tok / f).is_file() for f in TOKENIZER_FILES):
        rep.problems.append(f"{key}: {tok} has neither tokenizer.json nor vocab.json + merges.txt (every prompt "
                            "would encode to unknown tokens)")
    if weights:
        for comp in ("unet", "vae", "text_encoder"):
            if not any((d / comp).glob("*.safetensors")) and not any((d / comp).glob("*.bin")):
                rep.problems.append(f"{key}: {d / comp} holds no weights (.safetensors or .bin)")


def _safetensors_header(f: Path, key: str, rep: Report) -> int:
    """Tensor count from the header alone; 0 with a problem if it is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(f), "pt") as st:
            return len(list(st.keys()))
    except Exception as e:  # safetensors raises its own error types for every kind of damage
        rep.problems.append(f"{key}: {f} is not a readable safetensors file ({e})")
        return 0


def _base_model(params: dict[str, Any], rep: Report) -> None:
    b = params["base_model"]
    if b["name"] == "tiny":
        rep.rows.append(("base model", "tiny (built from config, pre-trained on the prepared images)"))
        return
    p = Path(b["name"])
    if p.is_dir():
        _diffusers_dir(p, "base_model.name", rep, weights=True)
        rep.rows.append(("base model", f"{p} (diffusers directory)"))
    else:
        if p.suffix == ".safetensors":
            n = _safetensors_header(p, "base_model.name", rep)
            rep.rows.append(("base model", f"{p} (single file, {n} tensors)"))
        else:
            rep.rows.append(("base model", f"{p} (single .ckpt file; opened with weights_only at the base_model stage)"))
        _diffusers_dir(Path(b["config"]), "base_model.config", rep, weights=False)


def _weights(params: dict[str, Any], rep: Report) -> None:
    named = [("train.pretrained_file", params["train"]["pretrained_file"]), ("audit.features", params["audit"]["features"])]
    named += [(f"train.overrides.{m}.pretrained_file", o["pretrained_file"])
              for m, o in params["train"]["overrides"].items() if o.get("pretrained_file")]
    shown = []
    for key, f in named:
        if f:
            if f.endswith(".safetensors"):
                _safetensors_header(Path(f), key, rep)
            shown.append(f"{key}={f}")
    rep.rows.append(("local weights", ", ".join(shown) or "none named (classifiers start from random weights)"))


def disk_needed(params: dict[str, Any], images: int) -> float:
    """Bytes the run will add: outputs twice (workspace and DVC cache), the LoRA latent cache once."""
    size = params["prepare"]["size"]
    px = size * size
    prepared = images * px * PNG_BYTES_PER_PIXEL
    g = params["generate"]
    synthetic = g["n_per_class"] * len(g["classes"]) * px * PNG_BYTES_PER_PIXEL
    base = 10e6 if params["base_model"]["name"] == "tiny" else SD15_FP32_BYTES
    latents_per_image = 2 * 4 * (size // 8) ** 2 * 4 * (4 if params["lora"]["flip_augment"] else 1)  # mean+std fp32
    train_share = 1 - params["prepare"]["val_fraction"] - params["prepare"]["test_fraction"]
    return 2 * (prepared + synthetic + base) + images * train_share * latents_per_image


def check(params_file: str | Path = "params.yaml") -> Report:
    """The whole check; raises nothing for what it can report (see Report.problems)."""
    from dermsynth.config import load_params
    from dermsynth.params import ParamsError, check_model_names

    rep = Report()
    try:
        params = load_params(params_file)
    except ParamsError as e:
        rep.problems += e.lines
        return rep
    rep.rows.append(("parameters", f"{params_file}: valid"))
    try:
        check_model_names(params)
        rep.rows.append(("classifiers", ", ".join(params["train"]["models"]) + f"; audit embedder "
                         f"{params['audit']['feature_model']} (timm)"))
    except ParamsError as e:
        rep.problems += e.lines
    images = _raw(params, rep)
    _external(params, rep)
    _base_model(params, rep)
    _weights(params, rep)
    need = disk_needed(params, images)
    free = shutil.disk_usage(Path(".").resolve()).free
    rep.rows.append(("disk", f"~{need / 1e9:.1f} GB needed for {images} images at {params['prepare']['size']} px "
                     f"and {params['generate']['n_per_class']} synthetic per class; {free / 1e9:.0f} GB free"))
    if need > free:
        rep.problems.append(f"disk: the run needs about {need / 1e9:.1f} GB and {free / 1e9:.1f} GB are free here")
    return rep
