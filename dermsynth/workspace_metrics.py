"""`dermsynth metrics`: the workspace's metrics files as one table per test set, with their flags."""
from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dermsynth.results import (HEADLINE, LABEL, WIDTH, Flag, flag_lines, flags, interval_cell, model_slug, table,
                               zero_width)
from dermsynth.testset_names import testset_name, testsets


@dataclass
class Entry:
    """One model's results as the evaluate stage left them."""

    model: str
    metrics: dict[str, Any]
    summary: dict[str, Any] | None
    note: str = ""  # why it is shown although params.yaml does not name it, or why its summary is missing


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    return json.loads(path.read_text()) if path.is_file() else None


def collect(models: list[str], reports: Path, classifiers: Path,
            ensembles: dict[str, list[str]] | None = None) -> tuple[list[Entry], list[str]]:
    """The models of params.yaml that have a metrics file, in its order, then its ensembles
    (evaluate.ensembles), then any other metrics file in reports/metrics (a model dropped from params.yaml
    still has one: shown, and said to be stale); and one note per model without metrics or training summary."""
    entries, notes = [], []
    ensembles = ensembles or {}
    slugs = {model_slug(m): m for m in models} | {e: e for e in ensembles}
    for m in models:
        met = _read_json(reports / "metrics" / f"{model_slug(m)}.json")
        if met is None:
            notes.append(f"{m}: no {reports / 'metrics' / (model_slug(m) + '.json')} yet (run `dvc repro`)")
            continue
        entries.append(Entry(m, met, _read_json(classifiers / model_slug(m) / "summary.json")))
    for name, members in ensembles.items():
        met = _read_json(reports / "metrics" / f"{name}.json")
        if met is None:
            notes.append(f"{name}: no {reports / 'metrics' / (name + '.json')} yet (run `dvc repro`)")
            continue
        entries.append(Entry(name, met, None, note=f"ensemble of {', '.join(members)}"))
    others = sorted(p for p in (reports / "metrics").glob("*.json") if p.stem not in slugs) \
        if (reports / "metrics").is_dir() else []
    for p in others:
        entries.append(Entry(p.stem, _read_json(p) or {}, _read_json(classifiers / p.stem / "summary.json"),
                             note="not in params.yaml train.models: an earlier configuration's file"))
    for e in entries:
        if e.note:
            notes.append(f"{e.model}: {e.note}")
        if e.summary is None and e.model not in ensembles:  # an ensemble trains nothing
            notes.append(f"{e.model}: no {classifiers / model_slug(e.model) / 'summary.json'} (validation AUROC "
                         "unchecked; `dvc pull` fetches it)")
    return entries, notes


@dataclass
class MetricsReport:
    testsets: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        out: list[str] = []
        for t in self.testsets:
            ns = {r["n"] for r in t["rows"]}
            title = f"{t['name']} test set" + (f" (n = {ns.pop()} images)" if len(ns) == 1 else "")
            headers = ["model"] + (["n"] if len(ns) > 1 else []) + [LABEL[m] for m in HEADLINE]
            rows = [[r["model"]] + ([str(r["n"])] if len(ns) > 1 else [])
                    + [interval_cell(r["metrics"][m]["value"], r["metrics"][m]["ci95"]) for m in HEADLINE]
                    for r in t["rows"]]
            out += [title + ": value [95 % bootstrap interval]", *table(headers, rows)]
            fl = [Flag(**f) for f in t["flags"]]
            out += (["flags:", *flag_lines(fl)] if fl else ["flags: none"]) + [""]
        out += [textwrap.fill(n, WIDTH, initial_indent="note: ", subsequent_indent="      ") for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def metrics_report(models: list[str], reports: Path, classifiers: Path,
                   ensembles: dict[str, list[str]] | None = None) -> MetricsReport:
    """One table per test set (model x headline metrics, intervals, n) and the flags under each: model
    flags (validation AUROC) under every table, since a reader may read only one."""
    from dermsynth.errors import UserError

    entries, notes = collect(models, reports, classifiers, ensembles)
    if not entries:
        raise UserError(f"no test metrics in {reports / 'metrics'} (run `dvc repro`, or `dvc pull` for the outputs)")
    every = {e.model: flags(e.model, e.metrics, e.summary) for e in entries}
    sets = []
    for ts in dict.fromkeys(ts for e in entries for ts in testsets(e.metrics)):
        rows = [{"model": e.model, "n": e.metrics.get(f"{ts}_n"),
                 "metrics": {m: {"value": e.metrics.get(f"{ts}_{m}"), "ci95": e.metrics.get(f"{ts}_{m}_ci95"),
                                 "zero_width": zero_width(e.metrics.get(f"{ts}_{m}_ci95"))} for m in HEADLINE}}
                for e in entries if ts in testsets(e.metrics)]
        fl = [asdict(f) for e in entries for f in every[e.model] if f.testset in (ts, None)]
        sets.append({"testset": ts, "name": testset_name(ts), "rows": rows, "flags": fl})
    return MetricsReport(sets, notes)
