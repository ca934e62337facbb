"""Results a user can read at a glance: `dermsynth metrics` and `dermsynth runs`, and the flags of
degenerate results that the model card shows too (one definition, here).

A degenerate result is one whose numbers look like results but are not:

- one-class predictions on a test set: sensitivity 0 with specificity 1 (every image called benign),
  or the reverse; balanced accuracy 0.5 and F1 0 then describe a constant answer, not a classifier;
- a best validation AUROC below 0.5: the model ranks validation images worse than chance, and the
  threshold every test metric uses was chosen on that validation set;
- a 95 % interval of zero width: the 2.5th and 97.5th percentiles of the bootstrap values are equal,
  which resampling a constant answer gives, and which a reader would take for certainty.

Here: the flags and the plain-text tables both commands print; `dermsynth metrics` itself is in
dermsynth/workspace_metrics.py, `dermsynth runs` and `dermsynth metrics --by ratio` in dermsynth/run_tables.py.

`dermsynth metrics` reads JSON files only and imports no torch, sklearn or matplotlib: it answers in
about a second (`--by ratio` and `dermsynth runs` open the MLflow store, a few seconds more).
"""
from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


def flag_lines(fl: Iterable[Flag]) -> list[str]:
    return [textwrap.fill(f.text, WIDTH, initial_indent="  ! ", subsequent_indent="    ", break_on_hyphens=False)
            for f in fl]
