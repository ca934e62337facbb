"""Stage audit_features: the audit's fixed embedder -> models/audit_features/.

Standard weights from a local file (`audit.features`), else a model trained once on the real
training images only. Neither `ratio` nor `seed` reaches it, so memorisation and fidelity stay
comparable across every experiment of a study.
"""
from pathlib import Path

import pandas as pd

from dermsynth.audit.features import build_feature_model
from dermsynth.config import prepared_size
from dermsynth.params import check_model_names
from stages._common import main


def run(params: dict) -> None:
    check_model_names(params)
    a = params["audit"]
    manifest = pd.read_csv(Path(params["paths"]["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    conf = build_feature_model(manifest, "models/audit_features", a["feature_model"],
                               a["feature_img_size"] or prepared_size(params["paths"]["prepared"]), a["feature_epochs"],
                               params["data_seed"], weights=a["features"])
    print(f"audit_features: {conf['kind']} {a['feature_model']}")


if __name__ == "__main__":
    main(run)
