"""Wall-clock timings of a stage (and other run state, such as the step a resumed run started
from), kept out of DVC-tracked outputs.

They differ from run to run; written into a tracked metrics file they would make a fresh
clone's `dvc repro` change `dvc.lock` and the committed reports. They go to
`reports/timings/<stage>.json` instead, which neither DVC nor git tracks.
"""
from __future__ import annotations

from pathlib import Path

from dermsynth.files import write_json


def write_timings(stage: str, timings: dict, reports: str | Path = "reports") -> Path:
    return write_json(Path(reports) / "timings" / f"{stage}.json", timings)
