"""The expectation suites of the data gates: raw manifest, prepared set and generated set."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd
from PIL import Image

from dermsynth.contracts import (ATTRIBUTES, METADATA_COLUMNS, METADATA_UNKNOWN_WHEN_IMPORTED, REQUESTED_COLUMNS,
                                 RESEED_COLUMNS, SYNTHETIC_IMAGE_COLUMNS)
from dermsynth.data.records import LABELS
from dermsynth.data.subgroups import AGE_BANDS, SITES, SKIN_TONES, UNKNOWN
from dermsynth.parallel import pmap
from dermsynth.params import Quality, defaults_from
from dermsynth.quality.gate import Table
from dermsynth.traits import VOCABULARY as TRAITS  # what a synthetic image may ask for (no unknown)



@dataclass(frozen=True)
@defaults_from(Quality)
class QualityConfig:
    min_raw_size: int
    min_minority_fraction: float
    min_split_rows: int
    min_pixel_std: float
    min_pixel_mean: float
    max_subgroup_shift: float
    min_subgroup_rows: int

VOCABULARY = {"sex": ["male", "female", UNKNOWN], "age_band": [n for _, n in AGE_BANDS] + [UNKNOWN],
              "site": [*SITES, UNKNOWN], "skin_tone": [*SKIN_TONES, UNKNOWN]}


def _why(text: str) -> dict:
    return {"why": text}


def label_stats(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts and minority fraction per value of `by`."""
    rows = []
    for key, g in df.groupby(by):
        n_mal = int((g["label"] == "malignant").sum())
        rows.append({by: key, "n": len(g), "malignant": n_mal, "benign": len(g) - n_mal,
                     "minority_fraction": min(n_mal, len(g) - n_mal) / len(g)})
    return pd.DataFrame(rows)


def raw_suite(manifest: pd.DataFrame, sources: list[str], cfg: QualityConfig) -> list[Table]:
    required = ["image_id", "source", "label", "file", "width", "height"]
    exps = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=_why("something usable must remain")),
        gxe.ExpectTableColumnsToMatchSet(column_set=required, exact_match=False, meta=_why("manifest contract")),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c, meta=_why("required field")) for c in required],
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABELS)),
        gxe.ExpectColumnValuesToBeInSet(column="source", value_set=sources),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["source", "image_id"], meta=_why("one row per image")),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.min_raw_size, meta=_why("raw resolution")),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.min_raw_size, meta=_why("raw resolution")),
    ]
    return [Table("manifest", manifest, exps), Table("labels_per_source", label_stats(manifest, "source"), [])]


def image_files(manifest: pd.DataFrame, repo_root: Path) -> pd.DataFrame:
    """What is really on disk for each manifest row (header read only, no full decode)."""
    rows = []
    for p in manifest["path"]:
        f = repo_root / p
        try:
            with Image.open(f) as im:
                rows.append({"path": p, "exists": True, "width": im.width, "height": im.height, "mode": im.mode})
        except Exception:  # noqa: BLE001 - a missing or unreadable file is exactly what we report
            rows.append({"path": p, "exists": f.exists(), "width": 0, "height": 0, "mode": ""})
    return pd.DataFrame(rows, columns=["path", "exists", "width", "height", "mode"])


def leakage(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per lesion, patient and duplicate cluster: in how many splits it appears."""
    parts = []
    for key in ("lesion_id", "patient_id", "duplicate_cluster"):
        if key not in manifest.columns:
            continue
        sub = manifest[manifest[key].notna() & (manifest[key].astype(str) != "")]
        n = sub.groupby(sub[key].astype(str))["split"].nunique()
        parts.append(pd.DataFrame({"key": key, "value": n.index, "n_splits": n.to_numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["key", "value", "n_splits"])


def balance(manifest: pd.DataFrame) -> pd.DataFrame:
    """Label balance per split, and per test set (ISIC and HAM10000 are evaluated separately)."""
    per_split = label_stats(manifest, "split").rename(columns={"split": "subset"})
    test = manifest[manifest["split"] == "test"].assign(
        subset=lambda d: "test:" + d["source"].where(d["source"] == "ham10000", "isic"))
    return pd.concat([per_split, label_stats(test, "subset")], ignore_index=True)


def subgroup_mix(manifest: pd.DataFrame, min_rows: int = 20) -> pd.DataFrame:
    """Per attribute and group: count and share in each split, and the largest share difference between splits.

    Splits are drawn by lesion group at random, so a group's share should be about the same in each;
    a large shift means a test set that over- or under-represents a patient group. `max_shift` is left
    empty (not gated) for a group with fewer than `min_rows` images in some split: its shares are noise."""
    rows = []
    splits = [s for s in ("train", "val", "test") if (manifest["split"] == s).any()]
    for attr in ATTRIBUTES:
        if attr not in manifest.columns:
            continue
        shares = pd.crosstab(manifest[attr], manifest["split"], normalize="columns").reindex(columns=splits, fill_value=0)
        counts = pd.crosstab(manifest[attr], manifest["split"]).reindex(columns=splits, fill_value=0)
        malignant = pd.crosstab(manifest[attr], manifest["label"] == "malignant").reindex(columns=[True], fill_value=0)
        for group in shares.index:
            rows.append({"attribute": attr, "group": group, **{f"n_{s}": int(counts.at[group, s]) for s in splits},
                         **{f"share_{s}": round(float(shares.at[group, s]), 4) for s in splits},
                         "n_malignant": int(malignant.at[group, True]),
                         "max_shift": round(float(shares.loc[group].max() - shares.loc[group].min()), 4)
                         if counts.loc[group].min() >= min_rows else None})
    return pd.DataFrame(rows, columns=["attribute", "group", *[f"n_{s}" for s in splits],
                                       *[f"share_{s}" for s in splits], "n_malignant", "max_shift"])


def prepared_suite(manifest: pd.DataFrame, repo_root: Path, size: int, cfg: QualityConfig) -> list[Table]:
    files = image_files(manifest, repo_root)
    return [
        Table("manifest", manifest, [
            gxe.ExpectTableColumnsToMatchSet(
                column_set=["image_id", "source", "label", "lesion_id", "patient_id", "split", "path", "width", "height"],
                exact_match=False, meta=_why("manifest contract (docs/contracts.md)")),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("image_id", "source", "label", "split", "path")],
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABELS)),
            gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "val", "test"],
                                                     meta=_why("all three splits present")),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["source", "image_id"]),
            gxe.ExpectColumnValuesToBeUnique(column="path"),
            *[gxe.ExpectColumnValuesToBeInSet(column=a, value_set=v, meta=_why("harmonised vocabulary; unknown stays"))
              for a, v in VOCABULARY.items() if a in manifest.columns],
        ]),
        Table("image_files", files, [
            gxe.ExpectColumnValuesToBeInSet(column="exists", value_set=[True], meta=_why("every listed image exists")),
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=size, max_value=size,
                                              meta=_why("resolution equals prepare.size")),
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=size, max_value=size,
                                              meta=_why("resolution equals prepare.size")),
            gxe.ExpectColumnValuesToBeInSet(column="mode", value_set=["RGB"]),
        ]),
        Table("balance", balance(manifest), [
            gxe.ExpectColumnValuesToBeBetween(column="minority_fraction", min_value=cfg.min_minority_fraction,
                                              meta=_why("quality.min_minority_fraction per split and test set")),
            gxe.ExpectColumnValuesToBeBetween(column="n", min_value=cfg.min_split_rows,
                                              meta=_why("quality.min_split_rows")),
        ], key="subset"),
        Table("subgroup_mix", subgroup_mix(manifest, cfg.min_subgroup_rows), [
            gxe.ExpectColumnValuesToBeBetween(column="max_shift", max_value=cfg.max_subgroup_shift,
                                              meta=_why("quality.max_subgroup_shift: each patient group about as common "
                                                        "in every split (groups with quality.min_subgroup_rows+ per split)")),
        ]),
        Table("leakage", leakage(manifest), [
            gxe.ExpectColumnValuesToBeBetween(column="n_splits", max_value=1,
                                              meta=_why("no lesion, patient or duplicate cluster crosses splits")),
        ]),
    ]


def _image_stats(repo_root: Path, path: str) -> tuple[bool, int, int, float, float]:
    import numpy as np

    try:
        with Image.open(repo_root / path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32)
    except Exception:  # noqa: BLE001 - an unreadable file is what the gate reports
        return False, 0, 0, 0.0, 0.0
    return True, a.shape[1], a.shape[0], float(a.std()), float(a.mean())


def synthetic_images(metadata: pd.DataFrame, repo_root: Path, workers: int = 0) -> pd.DataFrame:
    """Per generated image (contracts.SYNTHETIC_IMAGE_COLUMNS): does it decode, its size, its pixel statistics."""
    stats = pmap(functools.partial(_image_stats, Path(repo_root).resolve()), list(metadata["path"]), workers,
                 desc="synthetic images")
    out = pd.DataFrame(stats, columns=SYNTHETIC_IMAGE_COLUMNS[2:])
    out.insert(0, "label", metadata["label"].to_numpy())
    out.insert(0, "path", metadata["path"].to_numpy())
    return out[SYNTHETIC_IMAGE_COLUMNS]


def _count_checks(metadata: pd.DataFrame, n_per_class: int, classes: list[str],
                  imported: dict | None) -> tuple[pd.DataFrame, list]:
    """Images per class against what was asked: n_per_class each, exactly balanced; or, for a released set
    imported whole (n_per_class 0), every usable image it had, in its own class mix."""
    counts = metadata.groupby("label").size().reindex(classes, fill_value=0).rename("n").reset_index()
    counts["fraction"] = counts["n"] / max(len(metadata), 1)
    expected_fraction = 1.0 / len(classes)
    if imported and n_per_class == 0:
        usable = imported.get("usable") or {}
        counts["expected"] = [int(usable.get(c, -1)) for c in counts["label"]]
        count_checks = [gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n", column_B="expected",
            meta=_why("generate.n_per_class 0: every usable image of the released set, each class"))]
    else:
        counts["expected"] = n_per_class
        count_checks = [
            gxe.ExpectColumnValuesToBeBetween(column="n", min_value=n_per_class, max_value=n_per_class,
                                              meta=_why("generate.n_per_class images of each class")),
            gxe.ExpectColumnValuesToBeBetween(column="fraction", min_value=expected_fraction, max_value=expected_fraction,
                                              meta=_why("exactly balanced classes")),
        ]
    return counts, count_checks


def synthetic_suite(metadata: pd.DataFrame, images: pd.DataFrame, n_per_class: int, classes: list[str], size: int,
                    cfg: QualityConfig = QualityConfig(), reseeds: pd.DataFrame | None = None,
                    imported: dict | None = None) -> list[Table]:
    """`images`: synthetic_images(metadata, ...), each file's measurements; `reseeds`: the generator's
    retries of NaN/black renders (reseeds.csv): a PNG cannot hold a NaN, so the NaN check reads what the
    generator saw before it rounded, not the files.

    `imported`: the import record of a released set (dermsynth.diffusion.released.import_record), None for a
    generated one. An imported set may leave what its release does not say empty (no seed, sampler, LoRA);
    with n_per_class 0 each class must hold every usable image the set had (`imported["usable"]`), in
    whatever class mix the release has, else n_per_class of each class, balanced as a generated set."""
    if reseeds is None:
        reseeds = pd.DataFrame(columns=RESEED_COLUMNS)
    reseeds = reseeds.assign(recovered=reseeds["recovered"].astype(str).str.lower() == "true")
    # an empty field is a missing one (the stages read metadata.csv with keep_default_na=False)
    meta = metadata.replace({"": None}) if len(metadata) else metadata
    optional = {"negative_prompt", "source_file"} | (set(METADATA_UNKNOWN_WHEN_IMPORTED) if imported else set())

    counts, count_checks = _count_checks(metadata, n_per_class, classes, imported)
    asked = [c for c in REQUESTED_COLUMNS if c in meta]  # the traits generate.attributes asked for, if any
    return [
        Table("metadata", meta, [
            gxe.ExpectTableColumnsToMatchOrderedList(column_list=METADATA_COLUMNS + asked,
                                                     meta=_why("metadata contract (docs/contracts.md)")),
            *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=list(TRAITS[c.removeprefix("requested_")]),
                                              meta=_why("a known trait")) for c in asked],
            gxe.ExpectColumnValuesToBeUnique(column="image_id"),
            gxe.ExpectColumnValuesToBeUnique(column="path"),
            *([] if imported else [gxe.ExpectColumnValuesToBeUnique(column="seed", meta=_why("one recorded seed per image"))]),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in METADATA_COLUMNS if c not in optional],
        ]),
        Table("counts", counts, count_checks, key="label"),
        Table("images", images, [
            gxe.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True], meta=_why("every file decodes")),
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=size, max_value=size),
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=size, max_value=size),
            gxe.ExpectColumnValuesToBeBetween(column="pixel_std", min_value=cfg.min_pixel_std,
                                              meta=_why("no blank (flat) images")),
            gxe.ExpectColumnValuesToBeBetween(column="pixel_mean", min_value=cfg.min_pixel_mean,
                                              meta=_why("no black images")),
        ]),
        Table("reseeds", reseeds, [
            gxe.ExpectColumnValuesToBeInSet(column="recovered", value_set=[True],
                                            meta=_why("no NaN or black render left after generate.max_reseeds retries")),
        ]),
    ]
