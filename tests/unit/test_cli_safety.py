"""`dermsynth` commands do no damage: a report never replaces a study it does not cover, says what
it wrote and what it left out, and every command run from a subfolder works at the repository root
(params.yaml's paths, the MLflow store, the FiftyOne database) or, outside a repository, refuses."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from dermsynth import tracking
from dermsynth.classify.metrics import METRICS
from dermsynth.cli import main

ROOT = Path(__file__).resolve().parents[2]
DERMSYNTH = str(Path(sys.executable).parent / "dermsynth")
# variables that would point a command somewhere other than the repository it is started in
ELSEWHERE = ("DVC_ROOT", "MLFLOW_TRACKING_URI", "FIFTYONE_DATABASE_DIR", "DVC_EXP_NAME")


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A repository (dvc.yaml at its root) whose MLflow store is the default <root>/mlflow.db; the test
    works from its docs/ subfolder."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    for v in ("DVC_ROOT", "MLFLOW_TRACKING_URI", "DVC_EXP_NAME"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.chdir(root / "docs")
    return root


def _log(ratio: float, seed: int, level: float = 0.7, gap: bool = False, **params) -> str:
    """One finished run as the train and evaluate stages leave it: parameters, then test metrics."""
    with tracking.start_run(f"m ratio={ratio} seed={seed}", {"model": "m", "ratio": ratio, "seed": seed,
                                                             "data_seed": 42, "synthetic_class_mix": "match_real",
                                                             **params}) as (m, run):
        m.log_metrics({f"isic_{k}": (0.14 if k == "pauc80" else level) + (0.1 + 0.002 * seed) * ratio + 0.01 * seed
                       for k in METRICS}
                      | ({"isic_auc_gap_skin_tone": 0.1 + 0.01 * seed} if gap else {}))
        return run.info.run_id


def _study(ratios=(0.0, 0.5), seeds=(1, 2, 3), **kw) -> list[str]:
    return [_log(r, s, **kw) for r in ratios for s in seeds]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def _wrote(out: str) -> list[str]:
    return [line.removeprefix("wrote ") for line in out.splitlines() if line.startswith("wrote ")]


def test_report_with_no_flags_never_replaces_a_study_of_other_runs(repo, tmp_path, monkeypatch, capsys):
    """The user's case: the committed study was built from 6 runs; a fresh clone's store holds 2 of
    its own, and `dermsynth report` without flags must leave the study alone, with one line saying
    why and how to write it anyway."""
    _study(gap=True)
    main(["report"])  # from docs/: the default folder is <root>/reports, not docs/reports
    reports = repo / "reports"
    assert not (repo / "docs/reports").exists() and (repo / "mlflow.db").is_file()
    listed = _wrote(capsys.readouterr().out)
    assert sorted(listed) == sorted(f"reports/{f.name}" for f in reports.iterdir())  # every file written is named
    assert "reports/subgroup_gap.png" in listed and len(listed) == 7
    committed = _snapshot(reports)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/clone.db")  # the fresh clone's store
    _log(0.0, 1), _log(0.5, 1)
    capsys.readouterr()  # MLflow's own lines about creating that store
    with pytest.raises(SystemExit) as stop:
        main(["report"])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: reports holds a study of 6 runs and this report would hold 2, "
                                               "missing 4 of the study's 6 (model, ratio, seeds, condition) cells")
    assert "--out DIR" in err[0] and "--force" in err[0]
    assert _snapshot(reports) == committed  # not one byte changed

    main(["report", "--out", "mine"])  # typed paths are relative to the folder they are typed in
    assert _wrote(capsys.readouterr().out)[0] == "docs/mine/ratio_sweep_runs.csv"
    assert pd.read_csv(repo / "docs/mine/ratio_sweep_runs.csv").run_id.nunique() == 2
    assert _snapshot(reports) == committed

    main(["report", "--force"])
    out = capsys.readouterr().out
    assert pd.read_csv(reports / "ratio_sweep_runs.csv").run_id.nunique() == 2
    # the earlier study's gap plot would otherwise sit beside a report of runs that have none
    assert "removed reports/subgroup_gap.png (the earlier study's; this one has none)" in out
    assert not (reports / "subgroup_gap.png").exists()


def test_report_refreshes_a_study_it_covers(repo, capsys):
    """Re-running the study (new run ids, the same cells) and adding a ratio both refresh it without
    --force; the runs the new ones replaced are named as skipped."""
    first = _study()
    main(["report"])
    capsys.readouterr()
    second = _study(level=0.6) + _study(ratios=(1.0,))
    main(["report"])
    out = capsys.readouterr().out
    runs = pd.read_csv(repo / "reports/ratio_sweep_runs.csv")
    assert set(runs.run_id) == set(second)
    for run_id in first:
        line = next(x for x in out.splitlines() if f"({run_id[:8]})" in x.split(":")[0])
        assert "superseded by the newer run m ratio=" in line, line
    assert "ratio study of 9 runs (6 skipped)" in out


def test_report_names_every_run_it_skips_and_why(repo, tmp_path, capsys):
    old = _log(0.0, 9)  # an earlier study's run
    since = pd.Timestamp.now(tz="UTC")
    time.sleep(0.01)  # MLflow start times are in milliseconds: keep the next runs clear of the boundary
    kept = _study(ratios=(0.0,))
    client = mlflow.MlflowClient()
    queued = client.create_run(tracking.experiment_id(), run_name="still running").info.run_id  # evaluate not done
    for k, v in {"model": "m", "ratio": "0.5", "seed": "1"}.items():
        client.log_param(queued, k, v)
    with tracking.start_run("train only", {"model": "m", "ratio": 0.5, "seed": 2}) as (_, run):
        trained = run.info.run_id  # finished, but its evaluate stage logged nothing
    with tracking.start_run("not a classifier", {"purpose": "smoke"}) as (m, run):
        m.log_metric("isic_auc", 0.5)
        other = run.info.run_id
    main(["report", "--out", str(tmp_path / "rep"), "--since", since.strftime("%Y-%m-%d %H:%M:%S.%f")])
    lines = capsys.readouterr().out.splitlines()
    reasons = {run_id: next(x for x in lines if f"({run_id[:8]}):" in x) for run_id in (old, queued, trained, other)}
    assert "before --since (another study)" in reasons[old]
    assert reasons[queued] == f"skipped run still running ({queued[:8]}): unfinished (MLflow status RUNNING)"
    assert reasons[trained].endswith("finished without test-set metrics (its evaluate stage logged none)")
    assert reasons[other].endswith("no model/ratio/seed parameter (not a classifier run)")
    assert "ratio study of 3 runs (4 skipped)" in lines[-1]
    assert set(pd.read_csv(tmp_path / "rep/ratio_sweep_runs.csv").run_id) == set(kept)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ELSEWHERE}
    return env | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _dermsynth(*args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([DERMSYNTH, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_check_from_a_subfolder_is_check_from_the_root(tmp_path):
    """params.yaml's paths are relative to the root: from reports/ `dermsynth check` finds the same
    params file and archives as from the root; a path typed there is relative to reports/."""
    root = tmp_path / "repo"
    (root / "reports").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (root / "data/raw").symlink_to(ROOT / "data/raw")  # the demo archives, read only
    at_root, below = _dermsynth("check", cwd=root), _dermsynth("check", cwd=root / "reports")
    assert below.returncode == at_root.returncode == 0, below.stderr
    no_disk = lambda p: [x for x in p.stdout.splitlines() if not x.lstrip().startswith("disk")]  # noqa: E731
    assert no_disk(below) == no_disk(at_root)
    assert re.search(r"^  parameters +params.yaml: valid$", below.stdout, re.M) and "data/raw: ham10000 " in below.stdout
    assert sorted(p.name for p in (root / "reports").iterdir()) == []
    typed = _dermsynth("check", "mine.yaml", cwd=root / "reports")
    assert typed.returncode == 1
    assert typed.stderr.strip().splitlines() == [f"ERROR: {root / 'reports/mine.yaml'}: no such parameters file"]


def test_app_from_a_subfolder_puts_its_database_at_the_root(tmp_path):
    """`dermsynth app` from reports/ used to leave a 301 MB reports/.fiftyone/: its database is
    <root>/.fiftyone/db as FiftyOne itself resolves it. A busy port stops it before mongod starts."""
    root = tmp_path / "repo"
    (root / "reports").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = _dermsynth("app", "--port", str(port), cwd=root / "reports")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stdout.splitlines() == ["FiftyOne database: .fiftyone/db"]  # relative to the root
    assert p.stderr.strip().splitlines() == [
        f"ERROR: port {port} on 127.0.0.1 is already in use (another App?); choose one with --port"]
    assert list((root / "reports").iterdir()) == [] and not (root / ".fiftyone").exists()


def test_database_commands_outside_a_repository_refuse(tmp_path):
    """Without a dvc.yaml at or above the folder there is no root to put a database in: refuse rather
    than make one wherever the command happens to run."""
    for command in ("app", "report", "mlflow"):
        p = _dermsynth(command, cwd=tmp_path, timeout=60)
        variable = "FIFTYONE_DATABASE_DIR" if command == "app" else "MLFLOW_TRACKING_URI"
        assert p.returncode == 1 and p.stderr.strip().splitlines() == [
            f"ERROR: {tmp_path} is not inside a dermsynth repository (no dvc.yaml here or above): run "
            f"`dermsynth {command}` from the repository, or set {variable}"]
    assert list(tmp_path.iterdir()) == []


def test_every_sub_command_has_the_function_that_runs_it():
    """The parsers (dermsynth.cli_args) and the command table (dermsynth.cli.COMMANDS) name the same commands."""
    import argparse

    from dermsynth.cli import COMMANDS
    from dermsynth.cli_args import build_parser

    sub = next(a for a in build_parser(None)._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
