"""Stage quality_prepared: Great Expectations gate on the prepared set (resolution, balance, leakage, subgroup mix)."""
from pathlib import Path

import pandas as pd

from dermsynth.config import from_block
from dermsynth.quality.gate import run_gate
from dermsynth.quality.suites import QualityConfig, balance, prepared_suite, subgroup_mix
from stages._common import main


def run(params: dict) -> None:
    paths = params["paths"]
    cfg = from_block(QualityConfig, params["quality"])
    manifest = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False,
                           dtype={"image_id": str, "lesion_id": str, "patient_id": str})
    extra = "Label balance (the real imbalance, gated at quality.min_minority_fraction):\n\n" + \
        balance(manifest).to_markdown(index=False) + \
        "\n\nPatient groups per split (max_shift gated at quality.max_subgroup_shift where a group has " \
        "quality.min_subgroup_rows+ images in every split):\n\n" + \
        subgroup_mix(manifest, cfg.min_subgroup_rows).to_markdown(index=False)
    run_gate("prepared", prepared_suite(manifest, Path("."), params["prepare"]["size"], cfg),
             Path(paths["reports"]) / "quality", extra_md=extra)
    print(f"quality_prepared: passed on {len(manifest)} images")


if __name__ == "__main__":
    main(run)
