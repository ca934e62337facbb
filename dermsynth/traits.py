"""Prompt-controlled traits (Derm-T2IM's "smart transformations"): captions from each training image's
metadata, an asked-for mix of traits per synthetic set, and how closely the images follow it.

The parts a LoRA and a generator need, in pure functions over tables:

- `caption`: one training image's caption from a template (`{label}`, `{site}`, `{skin_tone}`) and its
  manifest row; a clause whose trait is unknown is left out rather than saying "unknown".
- `shares`: the mix a synthetic set asks for, `match_real` (the real training images' mix in that
  class), `uniform` (every value alike) or explicit `{value: share}`.
- `draw`: exactly that mix over n images (largest remainders), in a seeded order.
- `adherence`: requested against measured (e.g. the ITA band measured on each generated image): the
  confusion table and the share on target.

Used by train_lora (`lora.caption: attributes`), generate (`generate.attributes`) and the audit
(reports/audit/adherence.json); docs/seed_studies.md.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dermsynth.contracts import REQUESTED_COLUMNS
from dermsynth.data.subgroups import SITES, SKIN_TONES, UNKNOWN
from dermsynth.errors import UserValueError

VOCABULARY = {"skin_tone": SKIN_TONES, "site": SITES}  # what each trait may be asked for
_FIELD = re.compile(r"\{(\w+)\}")


def words(value: str) -> str:
    """A vocabulary value as prompt words: `very_light` -> `very light`, `head_neck` -> `head neck`."""
    return value.replace("_", " ")


def caption(template: str, label: str, row: dict | pd.Series) -> str:
    """`template` filled from one image's row: `{label}` the class, any other field the row's value of that
    trait. A comma-separated clause whose trait is unknown or empty is dropped, so that no caption teaches
    the word "unknown"."""
    clauses = []
    for clause in (c.strip() for c in template.split(",")):
        fields = set(_FIELD.findall(clause)) - {"label"}
        values = {f: str(row.get(f, "") or "") for f in fields}
        if any(v in ("", UNKNOWN, "nan") for v in values.values()):
            continue
        clauses.append(clause.format(label=label, **{f: words(v) for f, v in values.items()}))
    return ", ".join(clauses)


def captions(template: str, rows: pd.DataFrame) -> list[str]:
    """One training prompt per manifest row: `template` filled from its label and traits (the base
    model's pre-training and the LoRAs' `lora.caption: attributes` caption the same way)."""
    return [caption(template, str(r["label"]), r) for r in rows.to_dict("records")]


def shares(spec: str | dict[str, float], trait: str, real: pd.Series) -> dict[str, float]:
    """The asked-for mix of `trait` as {value: share} summing to 1. `real` holds the trait's values of the
    real training images of the class (for match_real; unknown ones do not count)."""
    vocabulary = VOCABULARY[trait]
    if spec == "uniform":
        return {v: 1 / len(vocabulary) for v in vocabulary}
    if spec == "match_real":
        known = real[real.isin(vocabulary)]
        if known.empty:
            raise UserValueError(f"generate.attributes.{trait}: match_real, but no real training image of the class has "
                                 f"a known {trait}")
        counts = known.value_counts()
        return {v: float(counts.get(v, 0)) / len(known) for v in vocabulary if counts.get(v, 0)}
    if not isinstance(spec, dict) or not spec:
        raise UserValueError(f"generate.attributes.{trait}: {spec!r} is not match_real, uniform or {{value: share}}")
    if bad := sorted(set(spec) - set(vocabulary)):
        raise UserValueError(f"generate.attributes.{trait}: {bad} not in {list(vocabulary)}")
    total = float(sum(spec.values()))
    if total <= 0 or min(spec.values()) < 0:
        raise UserValueError(f"generate.attributes.{trait}: shares must be >= 0 and not all 0, got {spec}")
    return {v: spec[v] / total for v in vocabulary if spec.get(v, 0) > 0}


def check_attributes(attributes: dict[str, str | dict[str, float]]) -> None:
    """`generate.attributes` against the traits' vocabularies, before any stage runs (the params stage):
    an explicit mix must name known values with shares that are not all 0."""
    for trait, spec in attributes.items():
        if isinstance(spec, dict):
            shares(spec, trait, pd.Series(dtype=str))


def draw(mix: dict[str, float], n: int, seed: int | tuple[int, ...]) -> list[str]:
    """`n` values in exactly the proportions of `mix` (largest remainders; ties by vocabulary order), in an
    order seeded by `seed`: image i's trait is a pure function of (mix, n, seed, i)."""
    values = list(mix)
    exact = np.array([mix[v] * n for v in values])
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    out = np.repeat(np.array(values, dtype=object), counts)
    seeds = list(seed) if isinstance(seed, tuple) else [seed]
    return list(np.random.default_rng([*seeds, 0x7EA1]).permutation(out))


def requested_columns(requested: dict[str, dict[str, list[str]]] | None) -> list[str]:
    """metadata.csv's `requested_<trait>` columns (docs/contracts.md): one per asked-for trait, none without."""
    traits = {t for per_class in (requested or {}).values() for t in per_class}
    return [c for c in REQUESTED_COLUMNS if c.removeprefix("requested_") in traits]


def request(attributes: dict[str, str | dict[str, float]], real_train: pd.DataFrame, classes: list[str] | tuple[str, ...],
            n_per_class: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """`generate.attributes` resolved: per class and trait, the value each of its n images asks for (the mix
    of `shares`, exactly, in a seeded order); match_real reads the class's real training images."""
    out: dict[str, dict[str, list[str]]] = {}
    for ci, label in enumerate(classes):
        real = real_train[real_train["label"] == label]
        out[label] = {t: draw(shares(spec, t, real[t] if t in real else pd.Series(dtype=str)), n_per_class,
                              (seed, ci, sorted(VOCABULARY).index(t)))
                      for t, spec in sorted(attributes.items())}
    return out


def adherence(requested: pd.Series, measured: pd.Series, trait: str) -> dict:
    """How the generated images follow what was asked: the confusion table (rows requested, columns
    measured, counts), each requested value's share on target, overall share on target, and the
    measured mix against the requested one."""
    vocabulary = list(VOCABULARY[trait])
    table = pd.crosstab(pd.Categorical(requested, vocabulary), pd.Categorical(measured, vocabulary + [UNKNOWN]),
                        dropna=False)
    asked = table.sum(axis=1)
    on_target = {v: (float(table.loc[v, v] / asked[v]) if asked[v] else None) for v in vocabulary}
    n = int(asked.sum())
    return {"trait": trait, "n": n,
            "share_on_target": float(sum(table.loc[v, v] for v in vocabulary) / n) if n else None,
            "on_target_by_request": on_target,
            "requested_mix": {v: float(asked[v] / n) for v in vocabulary} if n else {},
            "measured_mix": {str(v): float(table[v].sum() / n) for v in table.columns} if n else {},
            "confusion": {v: {str(c): int(table.loc[v, c]) for c in table.columns} for v in vocabulary}}


def adherence_report(synthetic: pd.DataFrame, tones: pd.DataFrame) -> dict:
    """reports/audit/adherence.json: per class and overall, how the skin tone measured on each synthetic image
    (the audit's ITA, `tones`: contracts.SKIN_TONE_COLUMNS) follows `requested_skin_tone`, with the median ITA
    per requested band (asked darker should measure lower); the site mix asked for (no site is measured)."""
    asked = [c for c in REQUESTED_COLUMNS if c in synthetic]
    if not asked:
        return {"requested": [], "note": "generate.attributes asked for no trait: nothing to adhere to"}
    out: dict = {"requested": [c.removeprefix("requested_") for c in asked]}
    if "requested_skin_tone" in synthetic:
        rows = synthetic[["image_id", "label", "requested_skin_tone"]].merge(
            tones[tones.origin == "synthetic"][["image_id", "ita", "skin_tone"]], on="image_id")
        by = {"all": rows} | {label: g for label, g in rows.groupby("label")}
        out["skin_tone"] = {
            name: adherence(g.requested_skin_tone, g.skin_tone, "skin_tone")
            | {"median_ita_by_request": {v: float(x.ita.median()) for v, x in g.groupby("requested_skin_tone")
                                         if x.ita.notna().any()}}
            for name, g in by.items()}
    if "requested_site" in synthetic:
        out["site"] = {"requested_mix": synthetic.groupby("label").requested_site.value_counts(normalize=True)
                       .unstack(fill_value=0).round(4).to_dict(orient="index"),
                       "note": "asked for only: no site is measured on an image"}
    return out
