"""`dermsynth` console commands."""
from __future__ import annotations

import argparse
import sys

from dermsynth.config import configure_environment
from dermsynth.errors import UserError


def _demo_data(args: argparse.Namespace) -> None:
    from dermsynth.demo.layouts import write_demo

    out = write_demo(args.out, seed=args.seed, defects=not args.no_defects, scale=args.scale)
    print(f"demo raw data written to {out}")


def _export_lora(args: argparse.Namespace) -> None:
    from dermsynth.diffusion.export import export_a1111

    out = args.out or f"{args.lora.rstrip('/').replace('/', '_')}_a1111.safetensors"
    print(f"wrote {export_a1111(args.lora, out)}")


def _report(args: argparse.Namespace) -> None:
    import pandas as pd

    from dermsynth import tracking
    from dermsynth.report import write_report

    runs = tracking.runs()
    # one study's runs only (the MLflow store keeps every run ever made)
    if args.since and len(runs):
        runs = runs[runs["start_time"] >= pd.Timestamp(args.since, tz="UTC")]
    if args.until and len(runs):
        runs = runs[runs["start_time"] < pd.Timestamp(args.until, tz="UTC")]
    s = write_report(runs, args.out)
    print(f"wrote {args.out}/ratio_sweep.md and .png from {len(s)} (model, test set, metric, ratio) cells")


def _app(args: argparse.Namespace) -> None:
    import fiftyone as fo

    from dermsynth.audit.app import serve
    from dermsynth.audit.build import build_from_outputs
    from dermsynth.config import load_params

    if args.rebuild or not fo.dataset_exists(args.dataset):
        print(f"building the FiftyOne dataset '{args.dataset}' from the pipeline's outputs...", flush=True)
        build_from_outputs(load_params(), name=args.dataset)
    serve(args.dataset, args.port)


def _mlflow(args: argparse.Namespace) -> None:
    import subprocess

    from dermsynth import tracking
    from dermsynth.audit.app import ADDRESS, port_free

    if not port_free(args.port):
        raise UserError(f"port {args.port} on {ADDRESS} is already in use; choose one with --port")
    # MLflow 3 opens every experiment on its GenAI page unless told otherwise (a per-browser toggle):
    # this link lands on the runs table
    url = f"http://{ADDRESS}:{args.port}/#/experiments/{tracking.experiment_id()}?workflowType=machine_learning"
    print(f"MLflow UI on the dermsynth runs: {url}  - Ctrl-C to stop", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "mlflow", "ui", "--host", ADDRESS, "--port", str(args.port),
                        "--backend-store-uri", tracking.tracking_uri()], check=False)
    except KeyboardInterrupt:  # the server got the same Ctrl-C and stops on its own
        pass


def _check(args: argparse.Namespace) -> None:
    from dermsynth.check import check

    rep = check(args.params)
    print(f"dermsynth check {args.params}\n{rep.table()}")
    if rep.problems:
        raise ParamsCheckFailed(rep.problems)
    print("ok: ready for `dvc repro`")


class ParamsCheckFailed(UserError):
    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    configure_environment()
    parser = argparse.ArgumentParser(prog="dermsynth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a params file and what it names (data, models, weights, disk)")
    p.add_argument("params", nargs="?", default="params.yaml")
    p.set_defaults(fn=_check)
    p = sub.add_parser("demo-data", help="write the procedural demo set in HAM10000/ISIC layouts")
    p.add_argument("--out", default="data/raw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-defects", action="store_true", help="leave out the deliberately bad inputs")
    p.add_argument("--scale", type=float, default=None,
                   help="scale profile: the four archives at their real image sizes and this fraction of their real "
                        "counts (1 = full size), with ISIC 2019's republished HAM10000 ids and ISIC 2020's duplicates")
    p.set_defaults(fn=_demo_data)
    p = sub.add_parser("export-lora", help="export a trained LoRA for AUTOMATIC1111 / ComfyUI")
    p.add_argument("--lora", default="models/lora/malignant", help="a diffusers LoRA directory or file")
    p.add_argument("--format", choices=["a1111"], default="a1111", help="kohya-ss safetensors (A1111, ComfyUI)")
    p.add_argument("--out", help="output .safetensors (default: <lora>_a1111.safetensors)")
    p.set_defaults(fn=_export_lora)
    p = sub.add_parser("report", help="ratio study from MLflow: reports/ratio_sweep.{md,png,csv}")
    p.add_argument("--out", default="reports")
    p.add_argument("--since", help="only runs started at or after this UTC time, e.g. '2026-11-24 09:30'")
    p.add_argument("--until", help="only runs started before this UTC time (a study that others followed)")
    p.set_defaults(fn=_report)
    p = sub.add_parser("mlflow", help="the MLflow UI (127.0.0.1) on the project's runs, offline")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(fn=_mlflow)
    p = sub.add_parser("app", help="open the FiftyOne App (127.0.0.1) on the real vs synthetic dataset")
    p.add_argument("--port", type=int, default=5151)
    p.add_argument("--dataset", default="dermsynth")
    p.add_argument("--rebuild", action="store_true", help="rebuild the dataset from the outputs first")
    p.set_defaults(fn=_app)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except UserError as e:  # the user's to fix: `ERROR: ...` lines, exit 1; a bug keeps its traceback
        lines = str(e).splitlines() or [type(e).__name__]
        print("\n".join(f"ERROR: {line}" for line in lines), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
