"""The ratio study: every MLflow run's test metrics against `ratio`, per model and test set.

A condition is (model, test set, metric, synthetic class mix, real fraction, filter, pool, generator);
within it:

- level at each ratio: mean over the replicates (seed, data_seed) with a 95 % t-interval computed
  on the logit scale of the metric's range and mapped back, so it stays inside [0, 1] ([0, 0.2]
  for pauc80). With fewer than 3 replicates no interval is shown: two points give a t-interval
  of +-12.7 standard deviations, which says nothing.
- effect of each ratio > 0 against ratio 0: mean paired difference (pairs share seed and
  data_seed, so split, generator and initialisation noise cancel), its 95 % t-interval (3+
  pairs), Cohen's d_z, the paired t-test p-value and its Holm adjustment over every test the
  report makes (the family: ratios x metrics x test sets x models x conditions).

Runs from before `synthetic_class_mix` existed drew the synthetic part 50/50 and are labelled
`balanced`; runs from before the filter stage are labelled filter `none 1` (every synthetic image).
Filter settings are part of the condition, so filtered and unfiltered runs compare at the same ratio.
The AUROC gap between the best and the worst patient group of each attribute (`auc_gap_<attribute>`)
is tracked against ratio like any metric: do synthetic images narrow it or widen it? Writes reports/ratio_sweep.{md,csv,png}, the per-run values it was computed from
(reports/ratio_sweep_runs.csv) and reports/ratio_grid.{md,png}.

A report folder holds one study. `check_replaces` refuses to overwrite one whose runs the new report
does not cover (a fresh clone's two-run store would otherwise replace the committed 60-run study);
`screen_runs` and `tidy_runs` say why every run left out was left out.

Here: the study's files and writing them. The statistics are in dermsynth/study_stats.py, the markdown
in dermsynth/study_markdown.py, the figures in dermsynth/study_figures.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dermsynth.arms import CONTROL
from dermsynth.errors import UserError, UserValueError
from dermsynth.runs import GAP_METRICS, screen_runs
from dermsynth.synthetic_source import LORA_GENERATOR
from dermsynth.study_figures import plot_curves, plot_grid
from dermsynth.study_markdown import markdown
from dermsynth.study_stats import CELL, GRID_METRICS, grid, summarise, tidy, with_defaults

# every file a report folder's study consists of (subgroup_gap.png only where gap metrics were logged)
STUDY_FILES = ("ratio_sweep_runs.csv", "ratio_sweep.md", "ratio_sweep.csv", "ratio_sweep.png", "subgroup_gap.png",
               "ratio_grid.md", "ratio_grid.png")
RUNS_FILE = STUDY_FILES[0]


def cells(df: pd.DataFrame) -> set[tuple]:
    """The study's run cells, in one canonical form (a CSV read back and a fresh tidy() compare equal)."""
    df = with_defaults(df)
    return {(str(m), round(float(r), 6), int(s), str(d), round(float(f), 6), str(x), str(flt), str(pool), str(gen))
            for m, r, s, d, f, x, flt, pool, gen in df[CELL].drop_duplicates().itertuples(index=False)}


def _describe(cell: tuple) -> str:
    model, ratio, seed, data_seed, frac, mix, filt, pool, generator = cell
    return (f"{model} ratio {ratio:g} seed {seed} data_seed {data_seed} real_fraction {frac:g} {mix} filter {filt}"
            + (" control arm" if pool == CONTROL else "") + ("" if generator == LORA_GENERATOR else f" {generator}"))


class StudyExists(UserError):
    """The report folder holds a study that the new report would lose runs of."""


def check_replaces(df: pd.DataFrame, out_dir: str | Path) -> None:
    """Refuse (StudyExists) unless `out_dir` has no study, or every run cell of its study is in `df`.

    "The same study" is judged by cells (model, ratio, seeds, condition), not run ids: re-running the
    study gives new ids for the same cells and should refresh it; a report that covers only some of
    the cells (one `dvc exp run` in a fresh clone, a narrower --since) would throw the rest away."""
    out_dir = Path(out_dir)
    runs_file = out_dir / RUNS_FILE
    present = [f for f in STUDY_FILES if (out_dir / f).exists()]
    if not present:
        return
    if not runs_file.is_file():
        raise StudyExists(f"{out_dir} holds a report ({present[0]}) without the runs it was built from ({RUNS_FILE}), "
                          "so whether this one covers it cannot be told: write this one elsewhere with --out DIR, or "
                          "replace it with --force")
    try:
        old = pd.read_csv(runs_file, dtype={"data_seed": str})
        old_cells = cells(old)
    except (ValueError, KeyError) as e:
        raise StudyExists(f"{runs_file} cannot be read ({e}): write this report elsewhere with --out DIR, or replace "
                          "it with --force") from None
    lost = sorted(old_cells - cells(df))
    if lost:
        raise StudyExists(f"{out_dir} holds a study of {old.run_id.nunique()} runs and this report would hold "
                          f"{df.run_id.nunique()}, missing {len(lost)} of the study's {len(old_cells)} (model, ratio, "
                          f"seeds, condition) cells, e.g. {_describe(lost[0])}: write it elsewhere with --out DIR, or "
                          "replace that study with --force")


@dataclass(frozen=True)
class Written:
    summary: pd.DataFrame
    files: list[Path]  # in the order written
    removed: list[Path]  # an earlier study's files this one has no counterpart for


def write_study(df: pd.DataFrame, out_dir: str | Path) -> Written:
    """Write the study of `df` (tidy() rows) into `out_dir`, replacing the study there (see check_replaces)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def out(name: str) -> Path:
        files.append(out_dir / name)
        return files[-1]

    s = summarise(df)
    df.to_csv(out(RUNS_FILE), index=False)  # the inputs: anyone can recompute the summary
    out("ratio_sweep.md").write_text(markdown(df, s))
    s.round(6).to_csv(out("ratio_sweep.csv"), index=False)
    plot_curves(s, out("ratio_sweep.png"))
    if s.metric.isin(GAP_METRICS).any():
        plot_curves(s, out("subgroup_gap.png"), GAP_METRICS)
    t = grid(s)
    out("ratio_grid.md").write_text("# Ratio x real fraction\n\nMean over replicates; columns: ratio.\n\n"
                                    + t.round(3).reset_index().to_markdown(index=False) + "\n")
    if not s[s.metric.isin(GRID_METRICS)].empty:  # plot_grid draws nothing without them
        plot_grid(s, out("ratio_grid.png"))
    # a file of the earlier study left beside this one would read as part of it (a gap plot of other runs)
    removed = [out_dir / f for f in STUDY_FILES if out_dir / f not in files and (out_dir / f).exists()]
    for f in removed:
        f.unlink()
    return Written(s, files, removed)


def write_report(runs: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """The study of every usable run in `runs` (mlflow.search_runs output), written to `out_dir`; its summary."""
    df = tidy(screen_runs(runs)[0])
    if df.empty:
        raise UserValueError("no evaluated runs in the MLflow experiment 'dermsynth' (run `dvc repro` or the sweep first)")
    return write_study(df, out_dir).summary
