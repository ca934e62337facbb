"""The `dermsynth` command line: its sub-commands, flags and help texts (dermsynth.cli runs them).

Each sub-parser's `command` is the key of dermsynth.cli.COMMANDS, the function that runs it.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def typed_path(value: str) -> Path:
    """A path typed on the command line, made absolute against the folder it was typed in (argparse
    converts it before main() moves to the root; defaults are Path objects, which it leaves alone, so
    they stay relative to the root)."""
    return Path(value).expanduser().absolute()


def build_parser(description: str | None) -> argparse.ArgumentParser:
    """The `dermsynth` parser, its sub-commands in the order `dermsynth --help` lists them."""
    parser = argparse.ArgumentParser(prog="dermsynth", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    _data_commands(sub)
    _study_commands(sub)
    _server_commands(sub)
    return parser


def _data_commands(sub) -> None:
    """check, demo-data, export-lora."""
    p = sub.add_parser("check", help="validate a params file and what it names (data, models, weights, disk)")
    p.add_argument("params", nargs="?", type=typed_path, default=Path("params.yaml"))
    p.add_argument("--explain", metavar="KEY", help="print a key's type, range, default and meaning from the schema "
                                                    "(e.g. lora.rank; a block such as lora lists its keys; '' = all)")
    p = sub.add_parser("demo-data", help="write the procedural demo set in HAM10000/ISIC layouts")
    p.add_argument("--out", type=typed_path, default=Path("data/raw"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-defects", action="store_true", help="leave out the deliberately bad inputs")
    p.add_argument("--scale", type=float, default=None,
                   help="scale profile: the four archives at their real image sizes and this fraction of their real "
                        "counts (1 = full size), with ISIC 2019's republished HAM10000 ids and ISIC 2020's duplicates")
    p.add_argument("--isic-archive", action="store_true",
                   help="also write a small ISIC Archive download (isic-cli layout) in <out>/isic_archive/demo-download "
                        "(not in the default demo: `make data` restores data/raw without it)")
    p = sub.add_parser("export-lora", help="export a trained LoRA for AUTOMATIC1111 / ComfyUI")
    p.add_argument("--lora", type=typed_path, default=Path("models/lora/malignant"),
                   help="a diffusers LoRA directory or file")
    p.add_argument("--format", choices=["a1111"], default="a1111", help="kohya-ss safetensors (A1111, ComfyUI)")
    p.add_argument("--out", type=typed_path, help="output .safetensors (default: <lora>_a1111.safetensors)")


def _study_commands(sub) -> None:
    """report, metrics, power, runs: a study's results."""
    p = sub.add_parser("report", help="ratio study from MLflow: reports/ratio_sweep.{md,png,csv}")
    p.add_argument("--out", type=typed_path, default=Path("reports"),
                   help="report folder (default: reports/ at the repository root)")
    p.add_argument("--force", action="store_true",
                   help="replace the study in --out even if this report does not cover all its runs")
    p.add_argument("--since", help="only runs started at or after this UTC time, e.g. '2026-11-24 09:30'")
    p.add_argument("--until", help="only runs started before this UTC time (a study that others followed)")
    p = sub.add_parser("metrics", help="test metrics at a glance: per test set, model x AUROC, balanced accuracy, "
                                       "sensitivity, specificity, pAUC80 [95 %% CI], flags for degenerate results")
    p.add_argument("--by", choices=["model", "ratio"], default="model",
                   help="model: the workspace's reports/metrics (default); ratio: a study's MLflow runs, mean and SD "
                        "over seeds per model and ratio")
    p.add_argument("--json", action="store_true", help="the same as JSON")
    p.add_argument("--since", help="with --by ratio: only runs started at or after this UTC time")
    p.add_argument("--until", help="with --by ratio: only runs started before this UTC time")
    p = sub.add_parser("power", help="from a study's runs: the effect it can detect, and the seeds (and test images) "
                                     "an effect needs, at 80 %% power")
    p.add_argument("--runs", type=typed_path, default=Path("reports/ratio_sweep_runs.csv"),
                   help="a study's per-run values (dermsynth report writes reports/ratio_sweep_runs.csv)")
    p.add_argument("--metric", default="balanced_accuracy")
    p.add_argument("--effect", type=float, default=0.02, help="the effect to detect (default 0.02: +2 points)")
    p.add_argument("--replicates", type=int, help="seeds (pairs) of the planned study (default: the measured study's)")
    p.add_argument("--testset-size", type=int, help="images of each planned test set (default: the prepared set's)")
    p = sub.add_parser("runs", help="the MLflow runs, one line each: name, condition, status, test AUROC")
    p.add_argument("--since", help="only runs started at or after this UTC time, e.g. '2026-11-24 09:30'")
    p.add_argument("--until", help="only runs started before this UTC time")


def _server_commands(sub) -> None:
    """mlflow, app: the UIs on 127.0.0.1."""
    p = sub.add_parser("mlflow", help="the MLflow UI (127.0.0.1) on the project's runs, offline")
    p.add_argument("--port", type=int, default=5000)
    p = sub.add_parser("app", help="open the FiftyOne App (127.0.0.1) on the real vs synthetic dataset")
    p.add_argument("--port", type=int, default=5151)
    p.add_argument("--dataset", default="dermsynth")
    p.add_argument("--rebuild", action="store_true", help="rebuild the dataset from the outputs first")
