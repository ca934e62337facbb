"""An ISIC Archive download (data/raw/isic_archive/<name>/) as isic-cli writes it: `<isic_id>.jpg`,
metadata.csv, attribution.txt and licenses/ (not part of the default demo)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dermsynth.data.subgroups import skin_tone
from dermsynth.demo.phantom import STYLES, render, sample_lesion, sample_skin
from dermsynth.demo.photos import jpeg_bytes

# An ISIC Archive download (data/raw/isic_archive/<name>/), as `isic image download` writes it: not part of
# the default demo (`make data` restores data/raw from DVC; a new folder there would re-run every stage).
# Each row: (diagnosis path, image_type, image_manipulation, anatom_site path); "" = not recorded.
ISIC_ARCHIVE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive", "dermoscopic", "instrument only",
     "Trunk:Posterior trunk:Upper back"),
    ("Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma in situ", "dermoscopic", "", "Head and neck:Head:Face"),
    ("Malignant:Malignant adnexal epithelial proliferations - Follicular:Basal cell carcinoma", "dermoscopic",
     "instrument only", "Head and neck:Neck"),
    ("Malignant:Malignant epidermal proliferations:Squamous cell carcinoma, NOS", "dermoscopic", "", "Upper extremity:Forearm"),
    ("Benign:Benign melanocytic proliferations:Nevus:Blue nevus", "dermoscopic", "instrument only", "Trunk:Anterior trunk"),
    ("Benign:Benign melanocytic proliferations:Nevus", "dermoscopic", "", "Lower extremity:Thigh"),
    ("Benign:Benign epidermal proliferations:Seborrheic keratosis", "dermoscopic", "", "Upper extremity:Hand:Palm of hand"),
    ("Benign:Benign soft tissue proliferations - Fibro-histiocytic:Dermatofibroma", "dermoscopic", "instrument only",
     "Lower extremity:Lower leg"),
    ("Benign", "dermoscopic", "", ""),
    ("Indeterminate:Indeterminate epidermal proliferations:Solar or actinic keratosis", "dermoscopic", "",
     "Head and neck:Head:Scalp"),
    ("Indeterminate:Indeterminate melanocytic proliferations:Atypical intraepithelial melanocytic proliferation",
     "dermoscopic", "instrument only", "Trunk:Lateral trunk"),
    ("Benign:Benign melanocytic proliferations:Nevus", "clinical: close-up", "", "Trunk:Posterior trunk"),
    ("Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma, NOS", "dermoscopic", "synthetic", ""),
)
# ISIC 2019's classes as ISIC's hierarchical diagnosis (for an image the archive republishes)
ISIC2019_IN_HIERARCHY = {
    "MEL": "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma, NOS",
    "NV": "Benign:Benign melanocytic proliferations:Nevus",
    "BCC": "Malignant:Malignant adnexal epithelial proliferations - Follicular:Basal cell carcinoma",
    "BKL": "Benign:Benign epidermal proliferations:Pigmented benign keratosis",
    "DF": "Benign:Benign soft tissue proliferations - Fibro-histiocytic:Dermatofibroma",
    "VASC": "Benign:Benign soft tissue proliferations - Vascular:Hemangioma",
    "SCC": "Malignant:Malignant epidermal proliferations:Squamous cell carcinoma, NOS",
}
ARCHIVE_LICENCES = ("CC-BY-NC", "CC-BY", "CC-0")
ARCHIVE_ATTRIBUTIONS = ("Demo Dermatology Clinic", "Demo University Hospital", "Anonymous")


def _republishable(isic2019: Path) -> tuple[str, str, bytes] | None:
    """(isic id, class, JPEG bytes) of the first ISIC 2019 image with one known class that decodes."""
    gt = pd.read_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv")
    for row in gt.to_dict("records"):
        hot = [c for c in ISIC2019_IN_HIERARCHY if float(row.get(c, 0) or 0) >= 0.5]
        f = isic2019 / "ISIC_2019_Training_Input" / f"{row['image']}.jpg"
        if len(hot) != 1 or float(row.get("UNK", 0) or 0) >= 0.5 or not f.is_file():
            continue
        try:
            with Image.open(f) as im:
                im.load()
        except Exception:  # noqa: BLE001 - the demo's deliberately broken files are skipped, not copied
            continue
        return str(row["image"]), hot[0], f.read_bytes()
    return None


# the Fitzpatrick type a clinician would likely record for a skin of each ITA band (a rough, monotone
# correspondence: ITA measures colour, Fitzpatrick the response to sun, so real records disagree at times)
FITZPATRICK_OF_BAND = {"very_light": "I", "light": "II", "intermediate": "III", "tan": "IV", "brown": "V", "dark": "VI"}


def _archive_row(isic_id: str, i: int, dx: str, image_type: str, manipulation: str, site: str,
                 rng: np.random.Generator, size: tuple[int, int], skin_ita: float | None = None) -> dict:
    """One image's metadata keys as the archive sends them: only what was recorded (isic-cli leaves the rest empty)."""
    row = {"isic_id": isic_id, "attribution": ARCHIVE_ATTRIBUTIONS[i % len(ARCHIVE_ATTRIBUTIONS)],
           "copyright_license": ARCHIVE_LICENCES[i % len(ARCHIVE_LICENCES)],
           "pixels_x": size[0], "pixels_y": size[1], "age_approx": int(rng.integers(4, 17)) * 5,
           "sex": str(rng.choice(["male", "female"])), "lesion_id": f"IL_{5000000 + i:07d}",
           "patient_id": f"IP_{5000000 + i // 2:07d}", "image_type": image_type,
           "diagnosis_confirm_type": "histopathology" if not dx.startswith("Benign") else "single image expert consensus"}
    row.update({f"diagnosis_{k + 1}": v for k, v in enumerate(dx.split(":"))})
    if site:
        row.update({f"anatom_site_{k + 1}": v for k, v in enumerate(site.split(":"))})
    if manipulation:
        row["image_manipulation"] = manipulation
    if image_type == "dermoscopic" and i % 2:
        row["dermoscopic_type"] = "contact polarized"
    if i % 3 == 0 and skin_ita is not None:  # sparse, as in the archive; the type of the skin drawn
        row["fitzpatrick_skin_type"] = FITZPATRICK_OF_BAND[skin_tone(skin_ita)]
    if dx.startswith("Malignant:Malignant melanocytic"):
        row["melanocytic"] = True
    return row


def write_isic_archive(root: str | Path, seed: int = 0, isic2019: str | Path | None = None,
                       size: tuple[int, int] = (160, 120)) -> Path:
    """An isic-cli download in `root` (e.g. data/raw/isic_archive/demo-download): `<isic_id>.jpg`,
    metadata.csv (isic_id, attribution, copyright_license, then the sorted union of the recorded keys;
    missing values empty), attribution.txt and licenses/. It holds each diagnosis_1 value, two
    Indeterminate rows, a clinical and a synthetic image, and, given the demo's `isic2019` folder, one
    image ISIC 2019 publishes too (same id, same bytes, its class in ISIC's hierarchy)."""
    import csv

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2026])
    rows = []
    for i, (dx, image_type, manipulation, site) in enumerate(ISIC_ARCHIVE_ROWS):
        isic_id = f"ISIC_{500000 + i:07d}"
        lesion = sample_lesion("malignant" if dx.startswith("Malignant") else "benign", rng)
        skin, skin_ita = sample_skin("isic2019", rng)
        img = render(lesion, STYLES["isic2019"], size[0], size[1], rng, skin_rgb=skin)
        (root / f"{isic_id}.jpg").write_bytes(jpeg_bytes(img))
        rows.append(_archive_row(isic_id, i, dx, image_type, manipulation, site, rng, size, skin_ita))
    found = _republishable(Path(isic2019)) if isic2019 else None
    if found:
        isic_id, cls, data = found
        (root / f"{isic_id}.jpg").write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:
            shape = im.size
        rows.append(_archive_row(isic_id, len(rows), ISIC2019_IN_HIERARCHY[cls], "dermoscopic", "", "Trunk", rng, shape))
    keys = sorted({k for r in rows for k in r} - {"isic_id", "attribution", "copyright_license"})
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["isic_id", "attribution", "copyright_license", *keys])
        w.writeheader()
        w.writerows(rows)
    # attribution.txt: by image count, Anonymous last; licenses/<licence>.txt for each one used
    counts = pd.Series([r["attribution"] for r in rows]).value_counts()
    named = sorted((a for a in counts.index if a != "Anonymous"), key=lambda a: (-counts[a], a))
    (root / "attribution.txt").write_text("\n\n".join(named + ["Anonymous"] * ("Anonymous" in counts)) + "\n")
    (root / "licenses").mkdir(exist_ok=True)
    for lic in sorted({r["copyright_license"] for r in rows}):
        (root / "licenses" / f"{lic}.txt").write_text(f"{lic}: the licence text ISIC ships (demo placeholder)\n")
    return root
