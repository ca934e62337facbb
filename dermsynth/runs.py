"""Which MLflow runs a study report may use, and why each other run is left out.

`dermsynth report` and `dermsynth metrics --by ratio` read the same runs through `screen_runs`: inside
[--since, --until), finished, with the study's parameters and some test-set metric. Every run left out
becomes a `Skipped` with its reason, printed, so a missing run is never a silent surprise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dermsynth.classify.metrics import METRICS
from dermsynth.contracts import ATTRIBUTES

TESTSETS = ("isic", "ham10000")
GAP_METRICS = tuple(f"auc_gap_{a}" for a in ATTRIBUTES)


def param(r: pd.Series, key: str, default):
    """A run's parameter `key` (mlflow.search_runs' `params.<key>`), or `default` where it has none."""
    v = r.get(f"params.{key}")
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else v


def model_label(r: pd.Series) -> str:
    """The run's model as a study groups it: `params.model`, with a training schedule other than mixed
    appended (`mobilenetv2_100 (synthetic_then_real)`), so that the report keeps schedules apart as it keeps
    models apart (each line against its own ratio-0 runs, which train as mixed on the real images)."""
    schedule = str(param(r, "schedule", "mixed"))
    return str(param(r, "model", "")) + ("" if schedule == "mixed" else f" ({schedule})")


@dataclass(frozen=True)
class Skipped:
    """A run the report leaves out, and why (printed, so a missing run is never a silent surprise)."""

    run_id: str
    name: str
    reason: str

    def line(self) -> str:
        return f"skipped run {self.name or '(unnamed)'} ({self.run_id[:8]}): {self.reason}"


# a run needs these parameters to have a place in the study (the train stage logs them)
RUN_PARAMS = ("model", "ratio", "seed")


def run_name(r: pd.Series) -> str:
    name = r.get("tags.mlflow.runName")
    return name if isinstance(name, str) else ""


def _has_test_metrics(r: pd.Series) -> bool:
    return any(isinstance(v, float) and not math.isnan(v)
               for v in (r.get(f"metrics.{ts}_{m}") for ts in TESTSETS for m in METRICS + GAP_METRICS))


def _skip_reason(r: pd.Series, since: pd.Timestamp | None, until: pd.Timestamp | None) -> str | None:
    started = r.get("start_time")
    when = f"started {started:%Y-%m-%d %H:%M:%S} UTC" if isinstance(started, pd.Timestamp) else "no start time"
    if since is not None and not (isinstance(started, pd.Timestamp) and started >= since):
        return f"{when}, before --since (another study)"
    if until is not None and not (isinstance(started, pd.Timestamp) and started < until):
        return f"{when}, not before --until (another study)"
    status = r.get("status", "FINISHED")
    if status != "FINISHED":  # RUNNING: still queued, or its evaluate stage failed or was killed
        return f"unfinished (MLflow status {status})"
    missing = [k for k in RUN_PARAMS if param(r, k, None) is None]
    if missing:
        return f"no {'/'.join(missing)} parameter (not a classifier run)"
    if not _has_test_metrics(r):
        return "finished without test-set metrics (its evaluate stage logged none)"
    return None


def screen_runs(runs: pd.DataFrame, since: pd.Timestamp | None = None,
                until: pd.Timestamp | None = None) -> tuple[pd.DataFrame, list[Skipped]]:
    """The runs a report can use (inside [since, until), finished, with parameters and test metrics),
    and every other one with its reason."""
    if runs.empty:
        return runs, []
    keep, skipped = [], []
    for i, r in runs.iterrows():
        reason = _skip_reason(r, since, until)
        if reason is None:
            keep.append(i)
        else:
            skipped.append(Skipped(str(r["run_id"]), run_name(r), reason))
    return runs.loc[keep], skipped
