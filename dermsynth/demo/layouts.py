"""Write phantoms in the native layouts of HAM10000, ISIC 2019, ISIC 2020 and ISIC 2024.

The demo set mirrors the real archives' structure: several photographs per lesion, several lesions
per patient (ISIC 2020/2024), class imbalance, HAM10000 images re-published in ISIC 2019 under the
same ids (cross-source exact duplicates), and, with `defects=True`, one of each kind of bad input
the ingest stage must quarantine, so the quarantine report of the demo is never empty.

The writers live in modules of their own (dermsynth.demo.challenge_sets: HAM10000 and ISIC 2019/2020/2024;
.external_sets: DDI; .archive_download: an ISIC Archive download; .photos: the specs and the drawing);
this module puts them together and keeps their names importable from here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dermsynth.demo.archive_download import (ARCHIVE_ATTRIBUTIONS, ARCHIVE_LICENCES, FITZPATRICK_OF_BAND,
                                             ISIC2019_IN_HIERARCHY, ISIC_ARCHIVE_ROWS, write_isic_archive)
from dermsynth.demo.challenge_sets import (HAM_BENIGN_DX, HAM_MALIGNANT_DX, ISIC2019_CLASSES, SITES, write_ham10000,
                                           write_isic2019, write_isic2020, write_isic2024)
from dermsynth.demo.external_sets import DDI_DISEASES, DDI_TONES, write_ddi
from dermsynth.demo.phantom import STYLES
from dermsynth.demo.photos import (DEFAULT_SPECS, ISIC2020_DUPLICATE_SHARE, REAL_ARCHIVES, TRUTH_FILE, DemoSpec,
                                   scale_specs)

__all__ = [
    "ARCHIVE_ATTRIBUTIONS", "ARCHIVE_LICENCES", "DDI_DISEASES", "DDI_TONES", "DEFAULT_SPECS", "FITZPATRICK_OF_BAND",
    "HAM_BENIGN_DX", "HAM_MALIGNANT_DX", "ISIC2019_CLASSES", "ISIC2019_IN_HIERARCHY", "ISIC2020_DUPLICATE_SHARE",
    "ISIC_ARCHIVE_ROWS", "REAL_ARCHIVES", "SITES", "TRUTH_FILE", "DemoSpec", "scale_specs", "write_ddi", "write_demo",
    "write_ham10000", "write_isic2019", "write_isic2020", "write_isic2024", "write_isic_archive",
]


def write_demo(
    raw_dir: str | Path,
    seed: int = 0,
    specs: dict[str, DemoSpec] | None = None,
    defects: bool = True,
    scale: float | None = None,
    external: bool = True,
) -> Path:
    """Write the whole demo raw set under `raw_dir` (one folder per source).

    `scale`: the scale profile instead, the archives at their real image sizes and this fraction of
    their real counts, ISIC 2019 republishing every HAM10000 image and ISIC 2020 listing duplicates.
    `external`: also the external test set `external/demo_ddi/` (params evaluate.external), in DDI's layout."""
    raw_dir = Path(raw_dir)
    specs = specs or (scale_specs(scale) if scale else DEFAULT_SPECS)
    republish = slice(None) if scale else slice(10, 16)
    n_dup = int(round(ISIC2020_DUPLICATE_SHARE * specs["isic2020"].lesions)) if scale and "isic2020" in specs else 0
    rngs = {s: np.random.default_rng([seed, i]) for i, s in enumerate(STYLES)}
    ham, truth = [], []
    if "ham10000" in specs:
        ham = write_ham10000(raw_dir / "ham10000", specs["ham10000"], rngs["ham10000"], defects, truth)
    if "isic2019" in specs:
        write_isic2019(raw_dir / "isic2019", specs["isic2019"], rngs["isic2019"], defects, ham, republish, truth)
    if "isic2020" in specs:
        write_isic2020(raw_dir / "isic2020", specs["isic2020"], rngs["isic2020"], defects, n_dup, truth)
    if "isic2024" in specs:
        write_isic2024(raw_dir / "isic2024", specs["isic2024"], rngs["isic2024"], defects, truth)
    if external:  # a stream of its own: the archives above are drawn as before
        write_ddi(raw_dir / "external" / "demo_ddi", np.random.default_rng([seed, 100]), defects=defects)
    if not scale:  # the scale profile does not measure its phantoms' skin (they are drawn small and upscaled)
        pd.DataFrame(truth, columns=["source", "image_id", "ita", "skin_tone"]).to_csv(raw_dir / TRUTH_FILE, index=False)
    return raw_dir
