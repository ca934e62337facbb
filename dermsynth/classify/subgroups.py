"""Test metrics per patient group (sex, age band, anatomic site, skin tone), from the predictions file.

Everything here reads `reports/predictions/<model>.csv` joined with the prepared manifest on
`image_id`, so anyone can recompute it. Each group gets AUROC, sensitivity, specificity and balanced
accuracy at the model's validation threshold (the predictions' `pred`), with class-stratified
bootstrap intervals; a group with fewer than `min_per_class` images of either class gets its counts
and no metric (an AUROC over three melanomas says nothing). `unknown` is a group like any other in
the table, but never the worst group nor part of a gap: it mixes patients of every kind.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from scipy.stats import rankdata

from dermsynth.classify.metrics import stratified_resample
from dermsynth.contracts import ATTRIBUTES, EXTERNAL_ATTRIBUTES, SUBGROUP_METRIC_COLUMNS
from dermsynth.data.subgroups import UNKNOWN

SUBGROUP_METRICS = ("auc", "sensitivity", "specificity", "balanced_accuracy")


def _measure(y: np.ndarray, hard: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, balanced accuracy of the hard predictions and the AUROC of the scores
    (Mann-Whitney from ranks, ties averaged: the bootstrap calls this 1000s of times per group)."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    sens, spec = float(hard[pos].sum() / n_pos), float((1 - hard[~pos]).sum() / n_neg)
    auc = (rankdata(score)[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return {"auc": float(auc), "sensitivity": sens, "specificity": spec, "balanced_accuracy": (sens + spec) / 2}


def _interval(y: np.ndarray, hard: np.ndarray, score: np.ndarray, n_boot: int,
              rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals over class-stratified resamples (as the test-set metrics)."""
    draws = [_measure(y[i], hard[i], score[i]) for i in (stratified_resample(y, rng) for _ in range(n_boot))]
    return {m: (float(np.percentile([d[m] for d in draws], 2.5)), float(np.percentile([d[m] for d in draws], 97.5)))
            if draws else (np.nan, np.nan) for m in SUBGROUP_METRICS}


def subgroup_metrics(pred: pd.DataFrame, manifest: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                     min_per_class: int = 5, attributes: tuple[str, ...] = ATTRIBUTES) -> pd.DataFrame:
    """Long table (contracts.SUBGROUP_METRIC_COLUMNS): one row per (test set, attribute, group, metric),
    one row with an empty metric for a group too small to measure."""
    attrs = [a for a in attributes if a in manifest.columns]
    joined = pred.merge(manifest[["image_id", *attrs]].drop_duplicates("image_id"), on="image_id", how="left")
    rng = np.random.default_rng(seed)
    rows = []
    for testset, t in joined.groupby("testset", sort=True):
        for attr in attrs:
            for group, g in t.groupby(t[attr].fillna(UNKNOWN).replace("", UNKNOWN), sort=True):
                y = g["label"].to_numpy().astype(int)
                n, n_mal = len(y), int(y.sum())
                base = {"testset": testset, "attribute": attr, "group": group, "n": n, "n_malignant": n_mal}
                if min(n_mal, n - n_mal) < min_per_class:
                    rows.append(base | {"metric": "", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan})
                    continue
                # `pred` is score >= the validation threshold, as in the test-set metrics
                hard, score = g["pred"].to_numpy().astype(float), g["score"].to_numpy().astype(float)
                point, ci = _measure(y, hard, score), _interval(y, hard, score, n_boot, rng)
                for m in SUBGROUP_METRICS:
                    rows.append(base | {"metric": m, "value": point[m], "ci_low": ci[m][0], "ci_high": ci[m][1]})
    return pd.DataFrame(rows, columns=SUBGROUP_METRIC_COLUMNS)


def _reported(manifest: pd.DataFrame) -> tuple[str, ...]:
    """The archive-reported skin-type attributes a manifest has any value of (contracts.EXTERNAL_ATTRIBUTES)."""
    return tuple(a for a in EXTERNAL_ATTRIBUTES if a in manifest and (manifest[a].astype(str) != "").any())


def subgroup_table(pred: pd.DataFrame, manifest: pd.DataFrame, external: dict[str, pd.DataFrame], n_boot: int,
                   seed: int) -> pd.DataFrame:
    """A model's (or an ensemble's) subgroup table over every test set: the prepared set's test sets joined
    with its manifest on image_id, each external set on its own (its ids are its own), each by the skin
    type its archive reports as well."""
    outside = pred["testset"].isin(list(external))
    tables = [subgroup_metrics(pred[~outside], manifest, n_boot, seed, attributes=ATTRIBUTES + _reported(manifest))]
    for n, df in external.items():
        tables.append(subgroup_metrics(pred[pred.testset == n], df, n_boot, seed, attributes=ATTRIBUTES + _reported(df)))
    return pd.concat(tables, ignore_index=True)


def worst_and_gap(table: pd.DataFrame) -> dict[str, float]:
    """Flat metrics `<testset>_<metric>_worst_<attribute>` and `..._gap_<attribute>` (best minus worst)
    over the measured groups other than unknown; a gap needs two such groups."""
    out = {}
    measured = table[(table.metric != "") & (table.group != UNKNOWN) & table.value.notna()]
    for (testset, attr, metric), g in measured.groupby(["testset", "attribute", "metric"]):
        out[f"{testset}_{metric}_worst_{attr}"] = float(g.value.min())
        if len(g) >= 2:
            out[f"{testset}_{metric}_gap_{attr}"] = float(g.value.max() - g.value.min())
    return out
