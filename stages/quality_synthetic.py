"""Stage quality_synthetic: Great Expectations gate on the synthetic set, generated or imported (then it
checks the n_per_class images of each class it asked for, or with 0 every usable image of the release)."""
import json
from pathlib import Path

import pandas as pd

from dermsynth.config import from_block, prepared_size
from dermsynth.quality.gate import run_gate
from dermsynth.quality.suites import QualityConfig, synthetic_images, synthetic_suite
from stages._common import main


def run(params: dict) -> None:
    g, q = params["generate"], from_block(QualityConfig, params["quality"])
    syn = Path(params["paths"]["synthetic"])
    meta = pd.read_csv(syn / "metadata.csv", keep_default_na=False)
    reseeds = pd.read_csv(syn / "reseeds.csv") if (syn / "reseeds.csv").is_file() else None
    size = prepared_size(params["paths"]["prepared"])  # what the synthetic images must match
    out = Path(params["paths"]["reports"]) / "quality"
    out.mkdir(parents=True, exist_ok=True)
    # an imported set's record (dermsynth.diffusion.released.IMPORT_RECORD): what the import found; none when generated
    imported = json.loads((syn / "import.json").read_text()) if (syn / "import.json").is_file() else None
    images = synthetic_images(meta, Path("."))
    # written before the verdict: on a failed gate it names every blank or unreadable file; the filter
    # stage reads its blanks from it instead of decoding every image again
    images.to_csv(out / "synthetic_images.csv", index=False)
    run_gate("synthetic", synthetic_suite(meta, images, g["n_per_class"], list(g["classes"]), size, q, reseeds, imported),
             out, extra_md=f"Imported from `{imported['source']}` ({imported['selection']})." if imported else "")
    print(f"quality_synthetic: passed on {len(meta)} images" + (f" imported from {imported['source']}" if imported else ""))


if __name__ == "__main__":
    main(run)
