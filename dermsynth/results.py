"""Results a user can read at a glance: `dermsynth metrics` and `dermsynth runs`, and the flags of
degenerate results that the model card shows too (one definition, here).

A degenerate result is one whose numbers look like results but are not:

- one-class predictions on a test set: sensitivity 0 with specificity 1 (every image called benign),
  or the reverse; balanced accuracy 0.5 and F1 0 then describe a constant answer, not a classifier;
- a best validation AUROC below 0.5: the model ranks validation images worse than chance, and the
  threshold every test metric uses was chosen on that validation set;
- a 95 % interval of zero width: the 2.5th and 97.5th percentiles of the bootstrap values are equal,
  which resampling a constant answer gives, and which a reader would take for certainty.

`dermsynth metrics` reads JSON files only and imports no torch, sklearn or matplotlib: it answers in
about a second (`--by ratio` and `dermsynth runs` open the MLflow store, a few seconds more).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dermsynth.testset_names import testset_name, testsets

WIDTH = 120  # every printed line fits a terminal this wide
HEADLINE = ("auc", "balanced_accuracy", "sensitivity", "specificity", "pauc80")
LABEL = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "sensitivity": "sensitivity",
         "specificity": "specificity", "f1": "F1", "auc": "AUROC", "pauc80": "pAUC80"}
PROSE = ("balanced_accuracy",)  # named in full in a sentence, abbreviated only as a column header
ZERO = 1e-9  # metrics are ratios of image counts: anything this close to 0 or 1 is exactly it


def model_slug(name: str) -> str:
    """dermsynth.classify.models.model_slug, which imports torch and timm with its module (several
    seconds for a command that reads three JSON files); tests/unit/test_results.py holds them equal."""
    return name.replace("/", "_").replace(":", "_")


@dataclass(frozen=True)
class Flag:
    """A degenerate result, in one sentence that names the model and test set."""

    model: str
    testset: str | None  # None: about the model as a whole (its validation AUROC)
    kind: str  # one_class | below_chance_validation | zero_width
    text: str


def _is(value: Any, target: float) -> bool:
    return isinstance(value, (int, float)) and abs(float(value) - target) < ZERO


def one_class(sensitivity: Any, specificity: Any) -> str | None:
    """The class a classifier gives every image of a test set ("benign", "malignant"), else None."""
    if _is(sensitivity, 0.0) and _is(specificity, 1.0):
        return "benign"
    if _is(sensitivity, 1.0) and _is(specificity, 0.0):
        return "malignant"
    return None


def zero_width(ci: Any) -> bool:
    return isinstance(ci, (list, tuple)) and len(ci) == 2 and abs(float(ci[1]) - float(ci[0])) < ZERO


def _metric_list(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def flags(model: str, metrics: dict[str, Any], summary: dict[str, Any] | None = None) -> list[Flag]:
    """Every degenerate result of one model: its metrics file (reports/metrics/<model>.json) and its
    training summary (models/classifiers/<model>/summary.json, where there is one)."""
    out = []
    best = (summary or {}).get("best_val_auc")
    if isinstance(best, (int, float)) and best < 0.5:
        out.append(Flag(model, None, "below_chance_validation",
                        f"{model}: best validation AUROC {best:.3f}, below 0.5: it ranks validation images worse than "
                        "chance, and every test metric uses the threshold chosen on them"))
    threshold = metrics.get("threshold")
    at = f" at the validation threshold {threshold:.3f}" if isinstance(threshold, (int, float)) else ""
    for ts in testsets(metrics):
        name = testset_name(ts)
        label = one_class(metrics.get(f"{ts}_sensitivity"), metrics.get(f"{ts}_specificity"))
        if label:
            out.append(Flag(model, ts, "one_class",
                            f"{model} predicts every {name} test image {label} (sensitivity "
                            f"{metrics[f'{ts}_sensitivity']:.3f}, specificity {metrics[f'{ts}_specificity']:.3f}{at}): "
                            "its balanced accuracy, F1 and accuracy describe a constant answer"))
        flat = [k.removeprefix(f"{ts}_").removesuffix("_ci95") for k in metrics
                if k.startswith(f"{ts}_") and k.endswith("_ci95") and zero_width(metrics[k])]
        flat = [m for m in flat if "_worst_" not in m and "_gap_" not in m]  # subgroup values carry no interval
        if flat:
            values = [f"{m.replace('_', ' ') if m in PROSE else LABEL.get(m, m)} {metrics[f'{ts}_{m}_ci95'][0]:.2f}"
                      for m in flat]
            out.append(Flag(model, ts, "zero_width",
                            f"{model} on {name}: interval of zero width for {_metric_list(values)}: the 2.5th and "
                            "97.5th percentiles of the bootstrap values are equal (resampling this test set cannot "
                            "move them), which is not certainty"))
    return out


def interval_cell(value: Any, ci: Any) -> str:
    """`0.603 [0.44, 0.75]`; an interval of zero width is named, not printed as [0.71, 0.71]."""
    if not isinstance(value, (int, float)):
        return "-"
    cell = f"{value:.3f}"
    if zero_width(ci):
        return cell + " [zero width]"
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return cell + f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return cell


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)].rstrip() + "…"


def table(headers: list[str], rows: list[list[str]], right: Iterable[int] = (),
          shrink: tuple[tuple[int, int], ...] = ((0, 8),), width: int = WIDTH) -> list[str]:
    """Aligned plain-text columns, two spaces apart, each line at most `width` characters: the
    `shrink` columns (names) give up characters in that order, each down to its floor; what they lose
    is marked with an ellipsis. A table that still does not fit keeps its long lines (unreadable
    cells would be worse)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for col, floor in shrink:
        over = sum(widths) + 2 * (len(widths) - 1) - width
        if over > 0:
            widths[col] = max(min(widths[col], floor), widths[col] - over)
    right = set(right)

    def line(cells: list[str]) -> str:
        return "  ".join(truncate(c, w).rjust(w) if i in right else truncate(c, w).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def _flag_lines(fl: Iterable[Flag]) -> list[str]:
    return [textwrap.fill(f.text, WIDTH, initial_indent="  ! ", subsequent_indent="    ", break_on_hyphens=False)
            for f in fl]


# ---- dermsynth metrics: the workspace's metrics files ------------------------------------------------------------


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


def collect(models: list[str], reports: Path, classifiers: Path) -> tuple[list[Entry], list[str]]:
    """The models of params.yaml that have a metrics file, in its order, then any other metrics file in
    reports/metrics (a model dropped from params.yaml still has one: shown, and said to be stale);
    and one note per model without metrics or training summary."""
    entries, notes = [], []
    slugs = {model_slug(m): m for m in models}
    for m in models:
        met = _read_json(reports / "metrics" / f"{model_slug(m)}.json")
        if met is None:
            notes.append(f"{m}: no {reports / 'metrics' / (model_slug(m) + '.json')} yet (run `dvc repro`)")
            continue
        entries.append(Entry(m, met, _read_json(classifiers / model_slug(m) / "summary.json")))
    others = sorted(p for p in (reports / "metrics").glob("*.json") if p.stem not in slugs) \
        if (reports / "metrics").is_dir() else []
    for p in others:
        entries.append(Entry(p.stem, _read_json(p) or {}, _read_json(classifiers / p.stem / "summary.json"),
                             note="not in params.yaml train.models: an earlier configuration's file"))
    for e in entries:
        if e.note:
            notes.append(f"{e.model}: {e.note}")
        if e.summary is None:
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
            out += (["flags:", *_flag_lines(fl)] if fl else ["flags: none"]) + [""]
        out += [textwrap.fill(n, WIDTH, initial_indent="note: ", subsequent_indent="      ") for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def metrics_report(models: list[str], reports: Path, classifiers: Path) -> MetricsReport:
    """One table per test set (model x headline metrics, intervals, n) and the flags under each: model
    flags (validation AUROC) under every table, since a reader may read only one."""
    from dermsynth.errors import UserError

    entries, notes = collect(models, reports, classifiers)
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


# ---- MLflow: the runs of a study ---------------------------------------------------------------------------------


def _param(r: pd.Series, key: str, default: Any) -> Any:
    v = r.get(f"params.{key}")
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def condition(r: pd.Series) -> dict[str, Any]:
    """A run's place in a study, with the defaults dermsynth/report.py gives runs from before a
    parameter existed (so both commands group the same runs the same way)."""
    keep = _number(_param(r, "keep_fraction", 1.0))
    return {"model": str(_param(r, "model", "")), "ratio": _number(_param(r, "ratio", None)),
            "seed": _param(r, "seed", ""), "data_seed": str(_param(r, "data_seed", "?")),
            "real_fraction": _number(_param(r, "real_fraction", 1.0)),
            "synthetic_class_mix": str(_param(r, "synthetic_class_mix", "balanced")),
            "filter": f"{_param(r, 'filter_policy', 'none')} {keep if keep is not None else 1.0:g}"}


def in_window(started: Any, since: pd.Timestamp | None, until: pd.Timestamp | None) -> bool:
    """[since, until), as `dermsynth report` reads them."""
    ok = isinstance(started, pd.Timestamp)
    return (since is None or (ok and started >= since)) and (until is None or (ok and started < until))


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _score(v: Any) -> str:
    f = _number(v)
    return "-" if f is None else f"{f:.3f}"


def runs_table(runs: pd.DataFrame, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None) -> list[str]:
    """`dermsynth runs`: one line per MLflow run in [since, until), oldest first: its name, condition,
    status and test AUROC per test set."""
    if not runs.empty and "start_time" in runs:
        runs = runs[[in_window(t, since, until) for t in runs["start_time"]]].sort_values("start_time")
    if runs.empty:
        return ["no MLflow runs" + (" in that time range" if since is not None or until is not None else "")]
    sets = testsets(runs.columns, "metrics.")
    rows = []
    for _, r in runs.iterrows():
        c, started = condition(r), r.get("start_time")
        name = r.get("tags.mlflow.runName")
        rows.append([f"{started:%m-%d %H:%M}" if isinstance(started, pd.Timestamp) else "-",
                     name if isinstance(name, str) else "", c["model"] or "-", _g(c["ratio"]), str(c["seed"] or "-"),
                     _g(c["real_fraction"]), c["synthetic_class_mix"], c["filter"], str(r.get("status", "")).lower()]
                    + [_score(r.get(f"metrics.{ts}_auc")) for ts in sets])
    headers = ["started", "name", "model", "ratio", "seed", "real", "class mix", "filter", "status"] + sets
    # the name's tail goes first: the train stage names a run by its model, ratio and seed, which have
    # columns of their own
    lines = table(headers, rows, right={3, 4, 5} | set(range(9, 9 + len(sets))), shrink=((1, 12), (2, 12)))
    done = sum(str(s) == "FINISHED" for s in runs.get("status", []))
    return lines + [f"{len(rows)} runs ({done} finished); start times UTC; real = train.real_fraction; "
                    f"{', '.join(sets) or 'no test set'}: test AUROC"]


@dataclass
class RatioReport:
    testsets: list[dict[str, Any]]
    runs: int
    skipped: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        out: list[str] = []
        for t in self.testsets:
            # one table per condition the study varies (real fraction, class mix, filter), named in its
            # title as the ratio report names its sections: as columns they would not fit 120 characters
            varied = [c for c in CONDITIONS if len({r[c] for r in t["rows"]}) > 1]
            parts: dict[tuple, list[dict[str, Any]]] = {}
            for r in t["rows"]:
                parts.setdefault(tuple(r[c] for c in varied), []).append(r)
            for key, rows in parts.items():
                where = "".join(f", {CONDITIONS[c]} {_g(v) if c == 'real_fraction' else v}"
                                for c, v in zip(varied, key))
                cells = [[r["model"], _g(r["ratio"]), str(r["runs"])]
                         + [_mean_sd(r["metrics"].get(m)) for m in HEADLINE] for r in rows]
                headers = ["model", "ratio", "runs"] + [LABEL[m] for m in HEADLINE]
                out += [f"{t['name']} test set{where}: mean ± SD over seeds (one run: no SD)",
                        *table(headers, cells, right=range(1, len(headers)))]
                fl = [Flag(**f) for r in rows for f in r["flags"]]
                out += (["flags:", *_flag_lines(fl)] if fl else ["flags: none"]) + [""]
        out.append(f"{self.runs} MLflow runs" + (f"; {len(self.skipped)} left out (`dermsynth report` with the same "
                                                 "--since/--until names each and why)" if self.skipped else ""))
        return "\n".join(out).rstrip() + "\n"


def _seed_order(seed: str) -> tuple[float, str]:
    """Seeds in numeric order (2 before 10), any that are not numbers after them."""
    n = _number(seed)
    return (n if n is not None else math.inf, seed)


def _mean_sd(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "-"
    return f"{cell['mean']:.3f}" + (f" ± {cell['sd']:.3f}" if cell["sd"] is not None else "")


def study_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a study: its condition, test metrics (`<testset>_<metric>`) and best validation
    AUROC; a re-run of a cell (model, ratio, seeds, condition) replaces the older run, as in the report."""
    sets = testsets(runs.columns, "metrics.")
    rows = []
    for _, r in runs.sort_values("start_time", ascending=False).iterrows():
        rows.append(condition(r) | {"run_id": r["run_id"], "best_val_auc": _number(r.get("metrics.best_val_auc"))}
                    | {f"{ts}_{m}": _number(r.get(f"metrics.{ts}_{m}")) for ts in sets for m in HEADLINE})
    cell = ["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix", "filter"]
    df = pd.DataFrame(rows)
    return df.drop_duplicates(cell, keep="first") if len(df) else df


GROUP = ["model", "real_fraction", "synthetic_class_mix", "filter", "ratio"]
CONDITIONS = {"real_fraction": "real_fraction", "synthetic_class_mix": "class mix", "filter": "filter"}  # as titled


def _ratio_flags(ts: str, key: dict[str, Any], g: pd.DataFrame) -> list[Flag]:
    where = f"{key['model']} ratio {_g(key['ratio'])}" + (f" real_fraction {_g(key['real_fraction'])}"
                                                           if key["real_fraction"] != 1.0 else "")
    out = []
    for label in ("benign", "malignant"):
        k = sum(one_class(s, p) == label for s, p in zip(g[f"{ts}_sensitivity"], g[f"{ts}_specificity"]))
        if k:
            out.append(Flag(key["model"], ts, "one_class", f"{where}: {k} of {len(g)} runs predict every "
                            f"{testset_name(ts)} test image {label}: their balanced accuracy and F1 describe a "
                            "constant answer"))
    low = [v for v in g.best_val_auc if v is not None and not math.isnan(v) and v < 0.5]
    if low:
        out.append(Flag(key["model"], None, "below_chance_validation",
                        f"{where}: best validation AUROC below chance (0.5) in {len(low)} of {len(g)} runs "
                        f"({', '.join(f'{v:.2f}' for v in sorted(low))}): their thresholds were chosen on it"))
    return out


def ratio_report(runs: pd.DataFrame, since: pd.Timestamp | None = None,
                 until: pd.Timestamp | None = None) -> RatioReport:
    """`dermsynth metrics --by ratio`: per test set, (model, ratio) x headline metrics, mean and SD over
    the seeds of the study's runs in [since, until); the conditions of the ratio report (real fraction,
    class mix, filter) split the rows where they vary."""
    from dermsynth.errors import UserError
    from dermsynth.runs import screen_runs  # the study's runs as `dermsynth report` chooses them

    kept, skipped = screen_runs(runs, since, until)
    df = study_runs(kept) if len(kept) else pd.DataFrame()
    if df.empty:
        raise UserError("no evaluated runs in the MLflow experiment 'dermsynth'" + (" in that time range" if since
                        is not None or until is not None else "") + " (run `dvc repro` or the sweep first)")
    sets = []
    for ts in testsets(df.columns):
        rows, fl = [], []
        # dropna=False: a run whose condition could not be read is a row of its own, not dropped
        for key, g in df[df[f"{ts}_auc"].notna()].groupby(GROUP, sort=True, dropna=False):
            key = dict(zip(GROUP, key))
            cells = {}
            for m in HEADLINE:
                v = g[f"{ts}_{m}"].dropna()
                if len(v):
                    cells[m] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                                "n": int(len(v))}
            mine = [asdict(f) for f in _ratio_flags(ts, key, g)]
            rows.append(key | {"runs": len(g), "seeds": sorted(map(str, g.seed), key=_seed_order), "metrics": cells,
                               "flags": mine})
            fl += mine
        sets.append({"testset": ts, "name": testset_name(ts), "rows": rows, "flags": fl})
    return RatioReport(sets, int(len(df)), [s.line() for s in skipped])
