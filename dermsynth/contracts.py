"""Column lists of the files other stages, tools and users read (docs/contracts.md says what they mean).

One module so that data, quality, classification, filtering and audit agree on them.
"""
from __future__ import annotations

# patient-group attributes (dermsynth.data.subgroups): harmonised at ingest, skin tone measured at preprocess
ATTRIBUTES = ("sex", "age_band", "site", "skin_tone")
# data/interim/manifest.csv
MANIFEST_COLUMNS = ["image_id", "source", "label", "lesion_id", "patient_id", "file", "width", "height", "diagnosis",
                    "sex", "age_band", "site", "also_in"]
# data/prepared/manifest.csv: the contract's first nine columns, then the rest
PREPARED_COLUMNS = ["image_id", "source", "label", "lesion_id", "patient_id", "split", "path", "width", "height"]
PREPARED_EXTRA_COLUMNS = ["diagnosis", "also_in", "phash", "duplicate_cluster", "group", "sex", "age_band", "site", "ita",
                          "skin_tone"]
# reports/metrics/<model>_subgroups.csv
SUBGROUP_METRIC_COLUMNS = ["testset", "attribute", "group", "n", "n_malignant", "metric", "value", "ci_low", "ci_high"]
# data/filter/scores.csv: one row per synthetic image, `kept` says whether the classifiers may draw it
FILTER_COLUMNS = ["image_id", "label", "blank", "near_copy", "knn_ratio", "label_prob", "score", "kept", "reason"]
# reports/audit/skin_tone.csv: skin tone of real training and synthetic images, measured alike on the
# lesion-centred images (outside the lesion's box)
SKIN_TONE_COLUMNS = ["image_id", "origin", "label", "ita", "skin_tone"]
