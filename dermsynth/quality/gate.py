"""Run Great Expectations suites over pandas tables and turn a failure into a stopped stage.

Each check is a plain GX 1.x Expectation; a suite is a list of (table name, DataFrame,
expectations). Results go to reports/quality/<suite>.json (machine-readable) and <suite>.md
(for people); a failed expectation raises QualityGateError naming it, so `dvc repro` stops there.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dermsynth.config import offline_environment
from dermsynth.errors import UserError

# before great_expectations is imported (below, in functions): it reads the setting at import
os.environ.setdefault("GX_ANALYTICS_ENABLED", offline_environment()["GX_ANALYTICS_ENABLED"])

log = logging.getLogger(__name__)


class QualityGateError(UserError, RuntimeError):
    pass


@dataclass
class Table:
    name: str
    df: pd.DataFrame
    expectations: list = field(default_factory=list)
    key: str = ""  # the column that names a row (e.g. the split or test set), for failure messages


def offenders(df: pd.DataFrame, key: str, kwargs: dict, limit: int = 10) -> list[str]:
    """`<key value>: <column>=<value>` for the rows a column-value expectation rejects (between or in-set)."""
    col = kwargs.get("column")
    if not key or col not in df or key not in df:
        return []
    values = df[col]
    if "value_set" in kwargs:
        bad = ~values.isin(kwargs["value_set"])
    else:
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        num = pd.to_numeric(values, errors="coerce")
        bad = num.notna() & (((num < lo) if lo is not None else False) | ((num > hi) if hi is not None else False))
    return [f"{k}: {col}={v}" for k, v in zip(df.loc[bad, key], values[bad])][:limit]


def _context():
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:  # GX draws a progress bar per metric; noise in a pipeline log
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return ctx


def _short(value, limit: int = 400):
    text = json.dumps(value, default=str)
    return value if len(text) <= limit else text[:limit] + "..."


def validate(suite: str, tables: list[Table]) -> dict:
    """Validate every table with its expectations; returns the report (not raising)."""
    import great_expectations as gx

    ctx = _context()
    source = ctx.data_sources.add_pandas(suite)
    checks = []
    for t in tables:
        batch = source.add_dataframe_asset(t.name).add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": t.df}
        )
        gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite}.{t.name}", expectations=t.expectations))
        result = batch.validate(gx_suite)
        for r in result.results:
            kw = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
            res = r.result or {}
            checks.append({
                "table": t.name,
                "expectation": r.expectation_config.type,
                "kwargs": _short(kw),
                "why": (r.expectation_config.meta or {}).get("why", ""),
                "success": bool(r.success),
                "observed": _short(res.get("observed_value")),
                "unexpected_count": res.get("unexpected_count"),
                "unexpected_examples": _short(res.get("partial_unexpected_list", [])[:10]),
                "error": (r.exception_info or {}).get("exception_message") if not r.success else None,
                "offenders": offenders(t.df, t.key, kw) if not r.success else [],
            })
    return {"suite": suite, "success": all(c["success"] for c in checks), "checks": checks,
            "tables": {t.name: int(len(t.df)) for t in tables}}


def to_markdown(report: dict, extra: str = "") -> str:
    lines = [f"# Quality gate `{report['suite']}`: {'PASSED' if report['success'] else 'FAILED'}", ""]
    if extra:
        lines += [extra, ""]
    lines += ["| | table | expectation | arguments | observed / unexpected |", "|---|---|---|---|---|"]
    for c in report["checks"]:
        obs = c["observed"] if c["observed"] is not None else f"{c['unexpected_count']} unexpected {c['unexpected_examples']}"
        kwargs = json.dumps(c["kwargs"], default=str).replace("|", "\\|")
        lines.append(f"| {'ok' if c['success'] else '**FAIL**'} | {c['table']} | {c['expectation']} | `{kwargs}` | "
                     f"{str(obs).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _bounds(kwargs: dict) -> str:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if "value_set" in kwargs:
        return f"not in {kwargs['value_set']}"
    return " and ".join(s for s in (f"below {lo}" if lo is not None else "", f"above {hi}" if hi is not None else "")
                        if s).replace(" and ", " or ")


def failures(report: dict) -> list[str]:
    """One line per failed check; where its table names its rows, one line per offending row instead
    (`balance: test:isic: n=3, below 10 (quality.min_split_rows)`)."""
    named = [f"{c['table']}: {o}, {_bounds(c['kwargs']) if isinstance(c['kwargs'], dict) else 'rejected'}"
             + (f" ({c['why']})" if c["why"] else "")
             for c in report["checks"] if not c["success"] for o in c.get("offenders") or []]
    return named + [
        f"{c['table']}: {c['expectation']}({json.dumps(c['kwargs'], default=str)}) failed"
        + (f" - {c['why']}" if c["why"] else "")
        + (f"; observed {c['observed']}" if c["observed"] is not None else "")
        + (f"; {c['unexpected_count']} unexpected, e.g. {c['unexpected_examples']}" if c["unexpected_count"] else "")
        + (f"; error: {c['error']}" if c["error"] else "")
        for c in report["checks"] if not c["success"] and not c.get("offenders")
    ]


def run_gate(suite: str, tables: list[Table], out_dir: str | Path, extra_md: str = "") -> dict:
    """Validate, write the reports, and raise QualityGateError if anything failed."""
    report = validate(suite, tables)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{suite}.json").write_text(json.dumps(report, indent=2, default=str))
    (out / f"{suite}.md").write_text(to_markdown(report, extra_md))
    if not report["success"]:
        msg = "\n  ".join(failures(report))
        raise QualityGateError(f"quality gate '{suite}' failed ({out / (suite + '.md')}):\n  {msg}")
    return report
