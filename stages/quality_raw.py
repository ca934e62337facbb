"""Stage quality_raw: Great Expectations gate on the raw manifest."""
from pathlib import Path

import pandas as pd

from dermsynth.config import from_block
from dermsynth.params import SOURCES
from dermsynth.quality.gate import run_gate
from dermsynth.quality.suites import QualityConfig, label_stats, raw_suite
from stages._common import main


def run(params: dict) -> None:
    paths = params["paths"]
    cfg = from_block(QualityConfig, params["quality"])
    manifest = pd.read_csv(Path(paths["interim"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    stats = label_stats(manifest, "source").to_markdown(index=False) if len(manifest) else ""
    run_gate("raw", raw_suite(manifest, list(SOURCES), cfg), Path(paths["reports"]) / "quality",
             extra_md="Label balance per source (reported, not gated):\n\n" + stats)
    print(f"quality_raw: passed on {len(manifest)} images")


if __name__ == "__main__":
    main(run)
