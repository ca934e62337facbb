"""`dermsynth` console commands.

Every command runs at the repository root (dermsynth.files.find_root), whichever of its folders it
is started from: params.yaml's paths, the MLflow store and the FiftyOne database are all relative to
the root. Paths typed on the command line stay relative to the folder they were typed in.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dermsynth.cli_args import build_parser
from dermsynth.config import configure_environment
from dermsynth.errors import UserError
from dermsynth.files import find_root
from dermsynth.process_group import serve_group

# commands that open a database at the root, and the variable that puts it elsewhere: outside a
# repository they would make a fresh one in whatever folder they were started from
DATABASE_VARIABLE = {"report": "MLFLOW_TRACKING_URI", "mlflow": "MLFLOW_TRACKING_URI", "app": "FIFTYONE_DATABASE_DIR",
                     "runs": "MLFLOW_TRACKING_URI", "metrics": "MLFLOW_TRACKING_URI"}  # metrics: --by ratio


def enter_repository(command: str) -> Path:
    """chdir to the repository root (the caller restores the folder); refuse a database command outside one."""
    root = find_root()
    if not root.is_dir():
        raise UserError(f"DVC_ROOT names {root}, which is not a folder")
    in_repository = bool(os.environ.get("DVC_ROOT")) or (root / "dvc.yaml").is_file()
    variable = DATABASE_VARIABLE.get(command)
    if not in_repository and variable and not os.environ.get(variable):
        raise UserError(f"{root} is not inside a dermsynth repository (no dvc.yaml here or above): run "
                        f"`dermsynth {command}` from the repository, or set {variable}")
    os.chdir(root)
    return root


def _shown(path: Path) -> str:
    """`path` relative to the root (the current folder) where it lies inside, else absolute."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


def _demo_data(args: argparse.Namespace) -> None:
    from dermsynth.demo.layouts import write_demo, write_isic_archive

    out = write_demo(args.out, seed=args.seed, defects=not args.no_defects, scale=args.scale)
    print(f"demo raw data written to {out}")
    if args.isic_archive:
        dl = write_isic_archive(Path(out) / "isic_archive" / "demo-download", seed=args.seed,
                                isic2019=Path(out) / "isic2019")
        print(f"ISIC Archive download (isic-cli layout) written to {dl}")


def _export_lora(args: argparse.Namespace) -> None:
    from dermsynth.diffusion.export import export_a1111

    lora = Path(_shown(args.lora))  # models/lora/malignant -> models_lora_malignant_a1111.safetensors at the root
    out = args.out or Path("_".join(lora.parts if not lora.is_absolute() else lora.parts[-1:]) + "_a1111.safetensors")
    print(f"wrote {_shown(export_a1111(args.lora, out))}")


def _power(args: argparse.Namespace) -> None:
    import pandas as pd

    from dermsynth.arms import paired_sd, plan
    from dermsynth.results import table
    from dermsynth.testset_names import testset_name

    if not args.runs.is_file():
        raise UserError(f"{args.runs}: no study's runs (run `dermsynth report` after a ratio sweep first)")
    df = pd.read_csv(args.runs, dtype={"data_seed": str})
    sds = paired_sd(df, args.metric)
    if sds.empty:
        raise UserError(f"{args.runs}: no cell with 2+ paired runs of {args.metric} (ratio 0 and another, same seeds)")
    sizes = _test_sizes()
    rows = []
    for r in sds.itertuples(index=False):
        n0 = sizes.get(r.testset)
        n = args.testset_size or n0
        # more test images shrink the test-sampling part of the variance only: scaling all of it by sqrt(N0/N)
        # is the most a larger test set can give (seed noise does not shrink), so read it as a best case
        scale = (n0 / n) ** 0.5 if n0 and n else 1.0
        reps = args.replicates or int(r.pairs)
        p = plan(r.sd, args.effect, reps, scale)
        rows.append([r.model, testset_name(r.testset), f"{n0 or '?'} -> {n or '?'}", f"{r.sd:.3f}", f"{p['sd']:.3f}",
                     str(reps), f"+-{p['detectable']:.3f}", str(p["replicates_needed"])])
    print(f"{args.metric}: paired SD measured in {args.runs} (pooled over its cells); detectable effect at 80 % power, "
          f"alpha 0.05 (paired t, before Holm); seeds needed for {args.effect:+g}")
    print("\n".join(table(["model", "test set", "test images", "SD", "SD planned", "seeds", "detectable",
                            "seeds needed"], rows, right=range(2, 8))))
    if args.testset_size:
        print("planned SD = measured SD x sqrt(measured / planned test images): a best case, as if all the variance "
              "came from sampling the test set")


def _test_sizes() -> dict[str, int]:
    """Images per internal test set of the prepared set (ISIC, HAM10000), {} without one."""
    import pandas as pd

    from dermsynth.classify.evaluate import split_test_sets

    m = Path("data/prepared/manifest.csv")
    if not m.is_file():
        return {}
    return {k: len(v) for k, v in split_test_sets(pd.read_csv(m, keep_default_na=False, dtype={"image_id": str})).items()}


def _utc(value: str | None, flag: str):
    import pandas as pd

    if value is None:
        return None
    try:
        return pd.Timestamp(value, tz="UTC")
    except ValueError:
        raise UserError(f"{flag} {value!r}: not a time (e.g. '2026-11-24 09:30', UTC)") from None


def _report(args: argparse.Namespace) -> None:
    from dermsynth import tracking
    from dermsynth.report import check_replaces, write_study
    from dermsynth.runs import screen_runs
    from dermsynth.study_stats import tidy_runs

    since, until = _utc(args.since, "--since"), _utc(args.until, "--until")
    # one study's runs only (the MLflow store keeps every run ever made)
    runs, skipped = screen_runs(tracking.runs(finished_only=False), since, until)
    df, superseded = tidy_runs(runs)
    for s in skipped + superseded:
        print(s.line())
    if df.empty:
        raise UserError("no evaluated runs in the MLflow experiment 'dermsynth'" + (" in that time range" if since or until
                        else "") + " (run `dvc repro` or the sweep first)")
    if not args.force:
        check_replaces(df, args.out)
    w = write_study(df, args.out)
    for f in w.files:
        print(f"wrote {_shown(f)}")
    for f in w.removed:
        print(f"removed {_shown(f)} (the earlier study's; this one has none)")
    print(f"ratio study of {df.run_id.nunique()} runs ({len(skipped) + len(superseded)} skipped) from {len(w.summary)} "
          "(model, test set, metric, ratio) cells")


def _metrics(args: argparse.Namespace) -> None:
    import json

    from dermsynth import run_tables, workspace_metrics

    if args.by == "ratio":
        from dermsynth import tracking

        since, until = _utc(args.since, "--since"), _utc(args.until, "--until")
        rep = run_tables.ratio_report(tracking.runs(), since, until)
    else:
        from dermsynth.config import load_params

        if args.since or args.until:  # the metrics files are one run's: there is nothing to choose by time
            raise UserError("--since/--until choose MLflow runs: use them with --by ratio")
        params = load_params()
        rep = workspace_metrics.metrics_report(params["train"]["models"], Path(params["paths"]["reports"]),
                                               Path("models/classifiers"), params["evaluate"]["ensembles"])
    print(json.dumps(rep.as_dict(), indent=2) if args.json else rep.text(), end="\n" if args.json else "")


def _runs(args: argparse.Namespace) -> None:
    from dermsynth import run_tables, tracking

    since, until = _utc(args.since, "--since"), _utc(args.until, "--until")
    print("\n".join(run_tables.runs_table(tracking.runs(finished_only=False), since, until)))


def _app(args: argparse.Namespace) -> None:
    import fiftyone as fo

    from dermsynth.audit.app import ADDRESS, port_free, serve
    from dermsynth.audit.build import build_from_outputs
    from dermsynth.config import load_params

    # where mongod will keep its files, as FiftyOne itself resolved it (a database is ~300 MB)
    print(f"FiftyOne database: {_shown(Path(fo.config.database_dir))}", flush=True)
    if not port_free(args.port):  # before a dataset build that can take minutes
        raise UserError(f"port {args.port} on {ADDRESS} is already in use (another App?); choose one with --port")
    if args.rebuild or not fo.dataset_exists(args.dataset):
        print(f"building the FiftyOne dataset '{args.dataset}' from the pipeline's outputs...", flush=True)
        build_from_outputs(load_params(), name=args.dataset)
    serve(args.dataset, args.port)


def _mlflow(args: argparse.Namespace) -> None:
    from dermsynth import tracking
    from dermsynth.audit.app import ADDRESS, port_free

    if not port_free(args.port):
        raise UserError(f"port {args.port} on {ADDRESS} is already in use; choose one with --port")
    # MLflow 3 opens every experiment on its GenAI page unless told otherwise (a per-browser toggle):
    # this link lands on the runs table
    url = tracking.runs_table_url(ADDRESS, args.port)
    print(f"MLflow UI on the dermsynth runs: {url}  - Ctrl-C to stop", flush=True)
    rc = serve_group([sys.executable, "-m", "mlflow", "ui", "--host", ADDRESS, "--port", str(args.port),
                      "--backend-store-uri", tracking.tracking_uri()])
    if rc:
        sys.exit(rc)


def _check(args: argparse.Namespace) -> None:
    from dermsynth.check import check

    if args.explain is not None:  # the schema's word on a key: nothing is read or checked
        from dermsynth.params import explain

        print(explain(args.explain))
        return
    rep = check(args.params)
    print(f"dermsynth check {args.params}\n{rep.table()}")
    if rep.problems:
        raise ParamsCheckFailed(rep.problems)
    print("ok: ready for `dvc repro`")


class ParamsCheckFailed(UserError):
    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))


# the function that runs each sub-command (dermsynth.cli_args builds their parsers)
COMMANDS = {"check": _check, "demo-data": _demo_data, "export-lora": _export_lora, "report": _report,
            "metrics": _metrics, "power": _power, "runs": _runs, "mlflow": _mlflow, "app": _app}


def main(argv: list[str] | None = None) -> None:
    # parsed before moving to the root: typed paths are relative to where they were typed
    args = build_parser(__doc__).parse_args(argv)
    start = os.getcwd()
    try:
        enter_repository(args.command)
        # after enter_repository, which must see whether the user set FIFTYONE_DATABASE_DIR before this
        # fills it in (with <root>/.fiftyone/db)
        configure_environment()
        COMMANDS[args.command](args)
    except UserError as e:  # the user's to fix: `ERROR: ...` lines, exit 1; a bug keeps its traceback
        lines = str(e).splitlines() or [type(e).__name__]
        print("\n".join(f"ERROR: {line}" for line in lines), file=sys.stderr)
        sys.exit(1)
    finally:
        os.chdir(start)  # for callers that run main() in-process


if __name__ == "__main__":
    main(sys.argv[1:])
