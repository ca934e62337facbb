"""The ratio study as markdown: reports/ratio_sweep.md, its tables of levels, effects and efficiency."""
from __future__ import annotations

import math

import pandas as pd

from dermsynth.arms import CONTROL, synthetic_efficiency
from dermsynth.classify.metrics import METRICS
from dermsynth.runs import GAP_METRICS
from dermsynth.study_stats import MIN_REPLICATES_FOR_INTERVAL, REPLICATE, metric_range, paired_effect, with_defaults
from dermsynth.synthetic_source import LORA_GENERATOR
from dermsynth.testset_names import testset_name

# class mixes whose synthetic part differs in class mix from the real part: origin then predicts the class
CONFOUNDED = {"balanced": " (synthetic part 50/50: class mix confounded with origin)",
              "minority": " (synthetic images of the minority class only: class confounded with origin)"}


def _varied(df: pd.DataFrame) -> list[str]:
    seeds, data_seeds = sorted(df.seed.unique()), sorted(df.data_seed.unique())
    lines = [f"- classifier seeds varied: {', '.join(map(str, seeds))} (initialisation, mixing, augmentation, bootstrap)"]
    if len(data_seeds) > 1:
        lines.append(f"- data seeds varied: {', '.join(data_seeds)} (split, diffusion, LoRA, generation): intervals "
                     "include split and generator variance")
    else:
        lines.append(f"- data_seed fixed at {data_seeds[0]}: intervals cover the classifier side only, not the split or "
                     "the generator (vary it with `-S data_seed=...`)")
    return lines


def _zero_width(low: float, high: float) -> bool:
    """An interval that prints as one number: identical replicates, not certainty."""
    return not math.isnan(low) and f"{low:.3f}" == f"{high:.3f}"


def _fmt_level(r: pd.Series) -> str:
    cell = f"{r['mean']:.3f}"
    if _zero_width(r.ci95_low, r.ci95_high):
        return cell + f" ({int(r.replicates)} identical replicates)"
    return cell + (f" [{r.ci95_low:.3f}, {r.ci95_high:.3f}]" if not math.isnan(r.ci95_low) else "")


def _fmt_mde(r) -> str:
    """The detectable effect, or that none inside the metric's range is (a t-test of 3 noisy pairs)."""
    lo, hi = metric_range(r.metric)
    if math.isnan(r.mde80):
        return ""
    return f"+-{r.mde80:.3f}" if r.mde80 <= hi - lo else f"none (> {hi - lo:g})"


def _efficiency_lines(df: pd.DataFrame) -> list[str]:
    """The control arm's section: how much of the gain of new real images the synthetic ones give."""
    e = synthetic_efficiency(df)
    if e.empty:
        return []
    lines = ["## Synthetic efficiency against held-out real images", "",
             "Both arms at the same ratio, class mix and counts: the synthetic arm's images come from the generator, "
             "the control arm's from real training groups the classifier would not otherwise see (what a perfect "
             "generator would give). Efficiency = synthetic effect / control effect against ratio 0 on the same "
             "replicates [95 % bootstrap interval]: 1 = as good as new real images, 0 = no gain.", "",
             "| model | test set | metric | ratio | real fraction | pairs | synthetic effect | control effect | "
             "efficiency |", "|---|---|---|---|---|---|---|---|---|"]
    for r in e.itertuples(index=False):
        eff = "" if math.isnan(r.efficiency) else f"{r.efficiency:.2f}"
        if not math.isnan(r.efficiency_low):
            eff += f" [{r.efficiency_low:.2f}, {r.efficiency_high:.2f}]"
        if not r.control_sees_an_effect:
            eff += " (the control arm shows no effect: this study cannot see at this size)"
        lines.append(f"| {r.model} | {testset_name(r.testset)} | {r.metric} | {r.ratio:g} | {r.real_fraction:g} | "
                     f"{r.pairs} | {r.effect_synthetic:+.3f} | {r.effect_control:+.3f} | {eff} |")
    return lines + [""]


# what a comparison of generators at one ratio shows: the subgroup gaps they are meant to move, and AUROC
GENERATOR_METRICS = GAP_METRICS + ("auc",)
SAME_BUT_GENERATOR = ["model", "testset", "synthetic_class_mix", "pool", "real_fraction", "filter", "ratio", "metric"]


def _reference(generators: list[str]) -> str:
    """The generator the others are compared with: the one asking for the real mix of the most traits, else
    the fixed prompts, else the first (generators sorted)."""
    return max(generators, key=lambda g: (g.count("=match_real"), g == LORA_GENERATOR))


def generator_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell that two or more generators share (same model, test set, condition, ratio > 0 and metric):
    each generator's mean over replicates, and its paired difference to the reference generator on the
    same replicates (mean, 95 % t-interval with 3+ pairs, t-test p): e.g. does asking for uniform skin
    tones narrow the skin-tone AUROC gap against asking for the real mix?"""
    df = with_defaults(df)
    d = df[(df.ratio > 0) & df.metric.isin(GENERATOR_METRICS)]
    rows = []
    for key, g in d.groupby(SAME_BUT_GENERATOR, sort=True):
        gens = sorted(g.generator.unique())
        if len(gens) < 2:
            continue
        ref = _reference(gens)
        lo, hi = metric_range(key[-1])
        base = g[g.generator == ref][REPLICATE + ["value"]]
        for gen in [ref] + [x for x in gens if x != ref]:
            mine = g[g.generator == gen]
            row = dict(zip(SAME_BUT_GENERATOR, key)) | {"generator": gen, "reference": ref, "replicates": len(mine),
                                                         "mean": float(mine.value.mean())}
            if gen != ref:
                paired = mine.merge(base, on=REPLICATE, suffixes=("", "_ref"))
                row |= paired_effect((paired.value - paired.value_ref).to_numpy(), hi - lo)
            rows.append(row)
    return pd.DataFrame(rows)


def _generator_lines(df: pd.DataFrame) -> list[str]:
    """The section comparing generators (generate.source / generate.attributes) at the same ratio."""
    c = generator_comparison(df)
    if c.empty:
        return []
    lines = ["## Generators compared at the same ratio", "",
             "Each generator's mean over replicates, and its paired difference to the reference generator (the real "
             "trait mix where one asked for it) on the same replicates [95 % t-interval], paired t-test p (not in the "
             "Holm family above). The AUROC gaps are between the best and the worst patient group: a negative "
             "difference means the generator narrowed the gap.", "",
             "| model | test set | ratio | metric | generator | replicates | mean | difference to reference |",
             "|---|---|---|---|---|---|---|---|"]
    for r in c.itertuples(index=False):
        diff = "reference" if r.generator == r.reference else _fmt_effect(pd.Series(
            {"delta": r.delta, "delta_low": r.delta_low, "delta_high": r.delta_high, "p": r.p, "p_holm": math.nan}))
        lines.append(f"| {r.model} | {testset_name(r.testset)} | {r.ratio:g} | {r.metric} | {r.generator} | "
                     f"{r.replicates} | {r.mean:.3f} | {diff} |")
    return lines + [""]


def _fmt_effect(r: pd.Series) -> str:
    if math.isnan(r.delta):
        return ""
    cell = f"{r.delta:+.3f}"
    if _zero_width(r.delta_low, r.delta_high):
        cell += " (the same in every replicate)"
    elif not math.isnan(r.delta_low):
        cell += f" [{r.delta_low:+.3f}, {r.delta_high:+.3f}]"
    if not math.isnan(r.p):
        cell += f" p={r.p:.2g}" + (f", Holm {r.p_holm:.2g}" if not math.isnan(r.p_holm) else "")
    return cell


def markdown(df: pd.DataFrame, s: pd.DataFrame) -> str:
    reps = int(s.replicates.max()) if len(s) else 0
    lines = ["# Ratio study", "",
             f"{df.run_id.nunique()} MLflow runs; ratio = fraction of synthetic training images. Replicates are "
             "(seed, data_seed) pairs:", *_varied(df), "",
             "Levels: mean over replicates [95 % t-interval on the logit scale, inside the metric's range]. Effects: "
             "paired difference to ratio 0 on the same replicates [95 % t-interval], paired t-test p and its Holm "
             f"adjustment over all {int(s.p.notna().sum())} tests of this report."]
    if reps < MIN_REPLICATES_FOR_INTERVAL:
        lines += ["", f"**No intervals**: at most {reps} replicate(s) per cell; a t-interval needs at least "
                  f"{MIN_REPLICATES_FOR_INTERVAL} to mean anything (with 2 it spans +-12.7 standard deviations)."]
    lines.append("")
    lines += _efficiency_lines(with_defaults(df))
    lines += _generator_lines(df)
    for (model, ts, mix, pool, frac, filt, gen), g in s.groupby(["model", "testset", "synthetic_class_mix", "pool",
                                                                "real_fraction", "filter", "generator"]):
        title = f"## {model} on {ts}" + CONFOUNDED.get(mix, "") + (
            " (control arm: held-out real images in the synthetic slots)" if pool == CONTROL else "") + (
            "" if gen == LORA_GENERATOR else f", generator {gen}")
        lines += [title + (f", real_fraction {frac:g}" if frac != 1.0 else "") + f", filter {filt}", "",
                  "| ratio | replicates | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        by = {(r.ratio, r.metric): r for r in g.itertuples(index=False)}
        ratios = sorted(g.ratio.unique())
        for ratio in ratios:
            cells = [_fmt_level(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in METRICS]
            lines.append(f"| {ratio:g} | {int(g[g.ratio == ratio].replicates.max())} | " + " | ".join(cells) + " |")
        effects = [r for r in ratios if r > 0 and g[g.ratio == r].delta.notna().any()]
        if effects:
            lines += ["", "Effect against ratio 0:", "", "| ratio | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
            for ratio in effects:
                cells = [_fmt_effect(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in METRICS]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
            lines += ["", "Smallest effect these pairs detect (80 % power, paired t-test, alpha 0.05 before Holm): an "
                      "effect reported as none may still be as large as this.", "",
                      "| ratio | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
            for ratio in effects:
                cells = [_fmt_mde(by[(ratio, m)]) if (ratio, m) in by else "" for m in METRICS]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
        gaps = [m for m in GAP_METRICS if (g.metric == m).any()]
        if gaps:
            lines += ["", "AUROC gap between the best and the worst patient group (smaller is fairer; "
                      "`reports/subgroup_gap.png`):", "", "| ratio | " + " | ".join(gaps) + " |", "|---|" + "---|" * len(gaps)]
            for ratio in ratios:
                cells = [_fmt_level(pd.Series(by[(ratio, m)]._asdict())) if (ratio, m) in by else "" for m in gaps]
                lines.append(f"| {ratio:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
