"""The persistent FiftyOne dataset `dermsynth`: real and synthetic images side by side.

Real samples carry source, split, label, lesion/patient ids and the patient-group attributes (sex,
age_band, site, ita and skin_tone of the photograph); synthetic ones the generation record (prompt,
sampler, steps, cfg, seed), their skin tone and the filter stage's scores (knn_ratio, label_prob,
filter_score, kept, filter_reason; tag `filtered_out`). `crop_ita` on synthetic and real training
images is measured alike on the lesion-centred images, for a fair side-by-side. Test images carry each classifier's prediction as a
Classification field `pred_<model>`. Embeddings, their 2-D map and uniqueness come from the audit
stage; saved views (each with a description) collect near-copies, misclassified test images and
synthetic images per class and sampler. The dataset's colour scheme fixes origin (real blue,
synthetic orange) and class colours everywhere in the App, the Embeddings panel's "Color by" too.
Rebuilding replaces the dataset, so it is idempotent.

FiftyOne 1.22's Embeddings panel opens on its list of runs with no colour field each time (both live
in the browser's unsaved panel state, reset when the panel mounts), so no dataset setting can open
`embedding_map` coloured by origin: docs/reading_results.md gives the two clicks. A saved view's App
URL takes its slug (`?view=near-copies`), not its name: `view_slug`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATASET = "dermsynth"
ORIGIN_COLOURS = {"real": "#1f77b4", "synthetic": "#ff7f0e"}  # matplotlib's first two: as in the report figures
CLASS_COLOURS = {"benign": "#2ca02c", "malignant": "#d62728"}


def _fo():
    from dermsynth.config import configure_environment

    configure_environment()
    import fiftyone as fo

    return fo


def _number(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _integer(v) -> int | None:
    n = _number(v)
    return int(n) if n is not None else None


def _samples(fo, real: pd.DataFrame, synthetic: pd.DataFrame, root: Path, embeddings: np.ndarray | None,
             memorization: pd.DataFrame | None, filter_scores: pd.DataFrame | None, skin_tones: pd.DataFrame | None):
    """One fo.Sample per row, real then synthetic (the order of `embeddings`' rows)."""
    vectors = iter(embeddings) if embeddings is not None else None
    # (origin, image_id) -> (ita, skin_tone) measured on the lesion-centred image
    crop = (dict(zip(zip(skin_tones.origin, skin_tones.image_id.astype(str)), zip(skin_tones.ita, skin_tones.skin_tone)))
            if skin_tones is not None else {})
    for r in real.itertuples():
        s = fo.Sample(
            filepath=str(root / r.path), tags=["real", r.split], origin="real", image_id=r.image_id, source=r.source,
            split=r.split, lesion_id=str(r.lesion_id or ""), patient_id=str(r.patient_id or ""),
            ground_truth=fo.Classification(label=r.label),
            **{a: str(getattr(r, a, "unknown") or "unknown") for a in ("sex", "age_band", "site", "skin_tone")},
            ita=_number(getattr(r, "ita", None)), crop_ita=_number(crop.get(("real", str(r.image_id)), (None,))[0]))
        if vectors is not None:
            s["embedding"] = np.asarray(next(vectors), dtype=np.float32)
        yield s
    near = set(memorization.loc[memorization.near_copy, "image_id"]) if memorization is not None else set()
    mem = memorization.set_index("image_id") if memorization is not None else None
    scores = filter_scores.set_index("image_id") if filter_scores is not None else None
    for r in synthetic.itertuples():
        tags = ["synthetic"] + (["near_copy"] if r.image_id in near else [])
        f = scores.loc[r.image_id] if scores is not None and r.image_id in scores.index else None
        kept = f is None or str(f.kept).lower() == "true"
        tone = crop.get(("synthetic", r.image_id), (None, "unknown"))
        s = fo.Sample(filepath=str(root / r.path), tags=tags + ([] if kept else ["filtered_out"]),
                      ita=_number(tone[0]), crop_ita=_number(tone[0]), skin_tone=str(tone[1]),
                      origin="synthetic", image_id=r.image_id, source="synthetic", split="synthetic",
                      prompt=r.prompt, negative_prompt=r.negative_prompt, sampler=r.sampler,
                      # an imported image leaves what its release does not say empty: None here, not a crash
                      steps=_integer(r.steps), cfg=_number(r.cfg), seed=_integer(r.seed),
                      synthetic_source=str(getattr(r, "source", "") or ""),
                      ground_truth=fo.Classification(label=r.label))
        if mem is not None and r.image_id in mem.index:
            m = mem.loc[r.image_id]
            s["nn_real_image_id"] = str(m.nn_real_image_id)
            s["nn_distance"] = float(m.nn_distance)
            s["nn_phash_distance"] = int(m.phash_distance)
        if f is not None:
            s["knn_ratio"], s["label_prob"] = _number(f.knn_ratio), _number(f.label_prob)
            s["filter_score"], s["kept"], s["filter_reason"] = _number(f.score), kept, str(f.reason)
        if vectors is not None:
            s["embedding"] = np.asarray(next(vectors), dtype=np.float32)
        yield s


def build_dataset(real: pd.DataFrame, synthetic: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                  root: Path, embeddings: np.ndarray | None = None, memorization: pd.DataFrame | None = None,
                  name: str = DATASET, viz_method: str = "pca", filter_scores: pd.DataFrame | None = None,
                  skin_tones: pd.DataFrame | None = None):
    """Create (or replace) the dataset from the stage's tables; `embeddings` rows: real, then synthetic."""
    fo = _fo()
    root = Path(root).resolve()
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    # A generator: FiftyOne inserts it in batches, so memory holds one batch of samples, not 459k.
    # Embeddings travel inside the samples (stored as binary): one bulk insert instead of a second
    # pass of per-sample updates, which takes 4x longer.
    ds.add_samples(_samples(fo, real, synthetic, root, embeddings, memorization, filter_scores, skin_tones),
                   progress=False)
    for model, pred in predictions.items():
        key = pred_field(model)
        lookup = {(str(r.image_id)): r for r in pred.itertuples()}
        view = ds.match_tags("test")
        values = []
        for image_id in view.values("image_id"):
            p = lookup.get(image_id)
            values.append(None if p is None else fo.Classification(
                label="malignant" if p.pred else "benign", confidence=float(p.score if p.pred else 1 - p.score)))
        view.set_values(key, values)
    _save_views(ds, list(predictions))
    ds.app_config.color_scheme = colour_scheme(fo, list(predictions))
    ds.save()
    if embeddings is not None and len(ds) > 3:
        import fiftyone.brain as fob

        fob.compute_visualization(ds, embeddings="embedding", method=viz_method, brain_key="embedding_map",
                                  seed=0, progress=False)
        fob.compute_uniqueness(ds, embeddings="embedding", progress=False)
    return ds


def pred_field(model: str) -> str:
    return "pred_" + model.replace(".", "_").replace("-", "_")


def view_slug(name: str) -> str:
    """The saved view's name in App URLs (`?view=<slug>`): FiftyOne lower-cases it and turns `_` into `-`."""
    import fiftyone.core.utils as fou

    return fou.to_slug(name)


def colour_scheme(fo, models: list[str]):
    """Origin and class colours by value, in the grid, the sidebar and the Embeddings panel's "Color by"."""
    def values(colours: dict[str, str]) -> list[dict[str, str]]:
        return [{"value": v, "color": c} for v, c in colours.items()]

    labels = [{"path": f, "colorByAttribute": "label", "valueColors": values(CLASS_COLOURS)}
              for f in ["ground_truth", *map(pred_field, models)]]
    return fo.ColorScheme(color_by="value", fields=[{"path": "origin", "valueColors": values(ORIGIN_COLOURS)}, *labels])


def saved_views(ds, models: list[str]) -> list[tuple[str, object, str, str | None]]:
    """(name, view, description, colour) of every saved view: the description is what the App's view menu shows."""
    from fiftyone import ViewField as F

    views = [("real", ds.match_tags("real"), "every real image: train, val and test, ISIC and HAM10000",
              ORIGIN_COLOURS["real"]),
             ("synthetic", ds.match_tags("synthetic"),
              "every generated image, with its prompt, sampler, steps, seed and filter scores", ORIGIN_COLOURS["synthetic"]),
             ("near_copies", ds.match_tags("near_copy"),
              "synthetic images as close to a real training image as a re-photographed lesion (audit memorisation "
              "flag); nn_real_image_id names that image", "#d62728"),
             ("filtered_out", ds.match_tags("filtered_out"),
              "synthetic images the filter stage kept from the classifiers; filter_reason says why", "#7f7f7f")]
    for tone in ds.distinct("skin_tone"):  # real and synthetic images of each skin-tone band
        views.append((f"skin_tone_{tone}", ds.match(F("skin_tone") == tone),
                      f"real and synthetic images of skin-tone band {tone.replace('_', ' ')} (ITA, Del Bino bands)", None))
    for model in models:
        key = pred_field(model)
        wrong = ds.match_tags("test").match(F(f"{key}.label") != F("ground_truth.label"))
        views.append((f"misclassified_{key[5:]}", wrong,
                      f"test images {model} got wrong at its threshold (chosen on validation); {key} holds its "
                      "prediction and confidence", None))
    syn = ds.match_tags("synthetic")
    for label in syn.distinct("ground_truth.label"):
        for sampler in syn.distinct("sampler"):
            if not sampler:  # imported from a released set that does not say: one view per class
                views.append((f"synthetic_{label}", syn.match((F("ground_truth.label") == label) & (F("sampler") == sampler)),
                              f"synthetic {label} images imported without a recorded sampler", None))
                continue
            views.append((f"synthetic_{label}_{sampler}",
                          syn.match((F("ground_truth.label") == label) & (F("sampler") == sampler)),
                          f"synthetic {label} images drawn with the {sampler} sampler", None))
    return views


def _save_views(ds, models: list[str]) -> None:
    for name, view, description, colour in saved_views(ds, models):
        ds.save_view(name, view, description=description, color=colour, overwrite=True)


def dataset_counts(name: str = DATASET) -> dict[str, int]:
    fo = _fo()
    ds = fo.load_dataset(name)
    return {"real": len(ds.match_tags("real")), "synthetic": len(ds.match_tags("synthetic")),
            "near_copy": len(ds.match_tags("near_copy")), "filtered_out": len(ds.match_tags("filtered_out"))}
