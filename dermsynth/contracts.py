"""Column lists of the files other stages, tools and users read (docs/contracts.md says what they mean).

One module so that data, quality, classification, filtering and audit agree on them.
"""
from __future__ import annotations

# patient-group attributes (dermsynth.data.subgroups): harmonised at ingest, skin tone measured at preprocess
ATTRIBUTES = ("sex", "age_band", "site", "skin_tone")
# reports/quarantine.csv: inputs set aside at ingest, each with the reason
QUARANTINE_COLUMNS = ["source", "image_id", "reason", "file", "detail"]
# reports/duplicates.csv: the same image republished in another archive, and the copy kept
DUPLICATES_COLUMNS = ["source", "image_id", "kept_source", "kept_id", "kind"]
# data/interim/manifest.csv; the last three as the ISIC Archive records them (isic_archive), empty for the
# other sources: the skin type, and the licence and attribution that bind what is derived from the image
MANIFEST_COLUMNS = ["image_id", "source", "label", "lesion_id", "patient_id", "file", "width", "height", "diagnosis",
                    "sex", "age_band", "site", "also_in", "fitzpatrick_skin_type", "copyright_license", "attribution"]
# data/prepared/manifest.csv: the contract's first nine columns, then the rest
PREPARED_COLUMNS = ["image_id", "source", "label", "lesion_id", "patient_id", "split", "path", "width", "height"]
# (`fitzpatrick_skin_type` beside the measured `ita`/`skin_tone`: the type the ISIC Archive reports, empty elsewhere)
PREPARED_EXTRA_COLUMNS = ["diagnosis", "also_in", "phash", "duplicate_cluster", "group", "sex", "age_band", "site", "ita",
                          "skin_tone", "fitzpatrick_skin_type", "centring", "lesion_confidence", "crop_px", "upscale",
                          "rim_filled"]
# the skin type an archive reports, each a subgroup attribute of its own where a test set has any: Fitzpatrick
# (`I`..`VI`, or DDI's groups `I-II`, `III-IV`, `V-VI`) and MILK10k's own tone classes (0 very dark .. 5 very
# light, not Fitzpatrick); empty where the archive says nothing
EXTERNAL_ATTRIBUTES = ("fitzpatrick_skin_type", "skin_tone_class")
# data/testsets/<name>/manifest.csv: an external test set (evaluate.external), preprocessed like the prepared set
# (its columns; split `external`, source the set's name), then MILK10k's tone classes
EXTERNAL_COLUMNS = PREPARED_COLUMNS + PREPARED_EXTRA_COLUMNS + ["skin_tone_class"]
# reports/metrics/<model>_subgroups.csv (the external test sets' rows too, by their names)
SUBGROUP_METRIC_COLUMNS = ["testset", "attribute", "group", "n", "n_malignant", "metric", "value", "ci_low", "ci_high"]
# data/filter/scores.csv: one row per synthetic image, `kept` says whether the classifiers may draw it
FILTER_COLUMNS = ["image_id", "label", "blank", "near_copy", "knn_ratio", "label_prob", "score", "kept", "reason"]
# reports/audit/skin_tone.csv: skin tone of real training and synthetic images, measured alike on the
# lesion-centred images (outside the lesion's box)
SKIN_TONE_COLUMNS = ["image_id", "origin", "label", "ita", "skin_tone"]
# data/synthetic/metadata.csv: one row per synthetic image, everything needed to regenerate it; then where it came
# from: `source` (generate.source: models/lora, or the released set it was imported from), `source_file` (the
# imported file, relative to the set's folder or CSV; empty for generated images) and `sha256` (of the original
# file's bytes: the generated PNG, or the released file before it was resized). An imported image leaves what its
# release does not say empty (sampler, steps, cfg, seed, lora, base_model, device, dtype; prompt too without a CSV)
METADATA_COLUMNS = ["image_id", "label", "prompt", "negative_prompt", "sampler", "steps", "cfg", "seed", "lora",
                    "base_model", "path", "device", "dtype", "source", "source_file", "sha256"]
# then, only where generate.attributes asked for traits, each image's asked-for value (dermsynth.traits),
# in this order
REQUESTED_COLUMNS = ["requested_site", "requested_skin_tone"]
# the columns an imported image may leave empty (and a generated one fills, but for negative_prompt and source_file)
METADATA_UNKNOWN_WHEN_IMPORTED = ["prompt", "negative_prompt", "sampler", "steps", "cfg", "seed", "lora", "base_model",
                                  "device", "dtype"]
# reports/generate/quarantine.csv uses QUARANTINE_COLUMNS: files of a released set left out, each with the reason
# data/synthetic/reseeds.csv: renders that came out NaN or black and the seeds tried after them
RESEED_COLUMNS = ["image_id", "label", "first_seed", "seed", "attempts", "reason", "recovered"]
# reports/quality/synthetic_images.csv: what the synthetic gate measured on every generated file (the
# filter reads its blanks from here instead of decoding every image again)
SYNTHETIC_IMAGE_COLUMNS = ["path", "label", "decodes", "width", "height", "pixel_std", "pixel_mean"]
# models/classifiers/<model>/training_set.csv: the hybrid training set one classifier draws, real and synthetic rows
MIX_COLUMNS = ["image_id", "path", "label", "origin"]
# reports/predictions/<model>.csv: the first columns; the test rows keep their image ids
PREDICTION_COLUMNS = ["image_id", "testset", "label", "score", "pred"]
# reports/predictions/<model>.csv holds the ISIC and HAM10000 test sets; <model>_external.csv, in the same
# columns, the external test sets (testset: the set's name)
VAL_PREDICTION_COLUMNS = ["image_id", "label", "score"]
# reports/predictions/<model>_val.csv: the validation scores that chose the threshold (label 1 = malignant);
# an ensemble (evaluate.ensembles) calibrates its members on them
# reports/audit/memorization.csv: each synthetic image's nearest real training image
MEMORIZATION_COLUMNS = ["image_id", "label", "sampler", "nn_real_image_id", "nn_distance", "nn_phash_real_image_id",
                        "phash_distance", "near_copy"]


def model_slug(name: str) -> str:
    """A file-system safe id of a timm model name: its output folders' and metric files' name
    (models/classifiers/<slug>/, reports/metrics/<slug>.json)."""
    return name.replace("/", "_").replace(":", "_")
