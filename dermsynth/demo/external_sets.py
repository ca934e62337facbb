"""External test sets in their native layouts (below <paths.raw>/external/): DDI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dermsynth.demo.phantom import STYLES, TONE_RANGES, render, sample_lesion, skin_of_ita

# DDI's grouped Fitzpatrick types (ddi_metadata.csv `skin_tone`) and the demo's ITA bands drawn for each
DDI_TONES = {"12": ("very_light", "light"), "34": ("intermediate", "tan"), "56": ("brown", "dark")}
DDI_DISEASES = {"malignant": ("melanoma-in-situ", "basal-cell-carcinoma", "squamous-cell-carcinoma-in-situ"),
                "benign": ("melanocytic-nevi", "seborrheic-keratosis", "dermatofibroma")}


def write_ddi(root: Path, rng: np.random.Generator, per_tone: int = 15, size: tuple[int, int] = (200, 150),
              defects: bool = True) -> Path:
    """An external test set in DDI's layout (`ddi_metadata.csv` + `000001.png`...): the same number of
    phantoms on each of DDI's three skin-type groups, about half of them malignant (8 of 15 by default;
    DDI has about a quarter, but the demo needs five of each class per group for a subgroup metric), photographed in a style of its own.
    With `defects`, one row names an image that is not there (quarantined as a missing file)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(3 * per_tone):
        tone = list(DDI_TONES)[i % 3]
        label = "malignant" if (i // 3) % 2 == 0 else "benign"
        lesion = sample_lesion(label, rng)
        ita = float(rng.uniform(*TONE_RANGES[str(rng.choice(DDI_TONES[tone]))]))
        skin = skin_of_ita(ita, float(rng.uniform(13.0, 19.0)), float(rng.uniform(8.0, 14.0)))
        img = render(lesion, STYLES["isic2020"], *size, rng, skin_rgb=skin)
        name = f"{i + 1:06d}.png"
        Image.fromarray(img).save(root / name, format="PNG")
        rows.append({"DDI_ID": i + 1, "DDI_file": name, "skin_tone": int(tone), "malignant": label == "malignant",
                     "disease": str(rng.choice(DDI_DISEASES[label]))})
    if defects:
        rows.append({"DDI_ID": len(rows) + 1, "DDI_file": f"{len(rows) + 1:06d}.png", "skin_tone": 34,
                     "malignant": False, "disease": "melanocytic-nevi"})
    pd.DataFrame(rows).to_csv(root / "ddi_metadata.csv", index=False)
    return root
