"""`dermsynth runs` and `dermsynth metrics --by ratio`: a study's MLflow runs as plain-text tables."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from dermsynth.results import HEADLINE, LABEL, Flag, flag_lines, one_class, table
from dermsynth.runs import model_label
from dermsynth.synthetic_source import LORA_GENERATOR
from dermsynth.testset_names import testset_name, testsets


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
    """A run's place in a study, with the defaults dermsynth/study_stats.py gives runs from before a
    parameter existed (so both commands group the same runs the same way)."""
    keep = _number(_param(r, "keep_fraction", 1.0))
    return {"model": model_label(r), "ratio": _number(_param(r, "ratio", None)),
            "seed": _param(r, "seed", ""), "data_seed": str(_param(r, "data_seed", "?")),
            "real_fraction": _number(_param(r, "real_fraction", 1.0)),
            "synthetic_class_mix": str(_param(r, "synthetic_class_mix", "balanced")),
            "filter": f"{_param(r, 'filter_policy', 'none')} {keep if keep is not None else 1.0:g}",
            "generator": str(_param(r, "generator", LORA_GENERATOR))}


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
                out += (["flags:", *flag_lines(fl)] if fl else ["flags: none"]) + [""]
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
    cell = ["model", "ratio", "seed", "data_seed", "real_fraction", "synthetic_class_mix", "filter", "generator"]
    df = pd.DataFrame(rows)
    return df.drop_duplicates(cell, keep="first") if len(df) else df


GROUP = ["model", "real_fraction", "synthetic_class_mix", "filter", "generator", "ratio"]
CONDITIONS = {"real_fraction": "real_fraction", "synthetic_class_mix": "class mix", "filter": "filter",
              "generator": "generator"}  # as titled


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
