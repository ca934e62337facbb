"""Write phantoms in the native layouts of HAM10000, ISIC 2019, ISIC 2020 and ISIC 2024.

The demo set mirrors the real archives' structure: several photographs per lesion, several lesions
per patient (ISIC 2020/2024), class imbalance, HAM10000 images re-published in ISIC 2019 under the
same ids (cross-source exact duplicates), and, with `defects=True`, one of each kind of bad input
the ingest stage must quarantine, so the quarantine report of the demo is never empty.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from dermsynth.data.subgroups import skin_tone
from dermsynth.demo.phantom import (STYLES, TONE_RANGES, Lesion, photographed_ita, render, render_with_truth,
                                    sample_lesion, sample_skin, skin_of_ita)
from dermsynth.errors import UserValueError

HAM_MALIGNANT_DX = ["mel", "bcc", "akiec"]
HAM_BENIGN_DX = ["nv", "bkl", "df", "vasc"]
ISIC2019_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
SITES = ["torso", "upper extremity", "lower extremity", "head/neck", "palms/soles"]


@dataclass(frozen=True)
class DemoSpec:
    """How many lesions each source gets, its malignant share and its image size (w, h)."""

    lesions: int
    malignant: float
    size: tuple[int, int]
    photos: tuple[int, int]  # min, max photographs per lesion
    render_short: int = 0  # > 0: draw at this short side and upscale (6000 x 4000 phantoms cost seconds each)


DEFAULT_SPECS: dict[str, DemoSpec] = {
    "ham10000": DemoSpec(95, 0.30, (300, 225), (1, 3)),
    "isic2019": DemoSpec(75, 0.35, (256, 256), (1, 2)),
    "isic2020": DemoSpec(70, 0.25, (320, 240), (1, 2)),
    "isic2024": DemoSpec(80, 0.25, (128, 128), (1, 1)),
}


# The real archives, for the scale profile: images (ISIC 2019 without the HAM10000 images it
# republishes), photographs per lesion, malignant share, typical image size (w, h).
REAL_ARCHIVES = {
    "ham10000": (10_015, (1, 2), 0.195, (600, 450)),
    "isic2019": (15_316, (1, 1), 0.48, (1024, 1024)),
    "isic2020": (33_126, (1, 1), 0.0176, (6000, 4000)),
    "isic2024": (401_059, (1, 1), 0.00098, (130, 130)),
}
ISIC2020_DUPLICATE_SHARE = 425 / 33_126  # pairs in ISIC_2020_Training_Duplicates.csv


def scale_specs(fraction: float, sources: tuple[str, ...] = tuple(REAL_ARCHIVES)) -> dict[str, DemoSpec]:
    """The archives at their real image sizes and `fraction` of their real counts (1 = full size)."""
    if not 0 < fraction <= 1:
        raise UserValueError(f"--scale must be in (0, 1], got {fraction}")
    out = {}
    for name in sources:
        images, photos, malignant, size = REAL_ARCHIVES[name]
        lesions = max(int(round(images * fraction / (sum(photos) / 2))), 4)
        malignant = max(malignant, 2.0 / lesions)  # at least a couple of malignant lesions at tiny fractions
        out[name] = DemoSpec(lesions, malignant, size, photos, render_short=min(min(size), 512))
    return out


def _jpeg(arr: np.ndarray, quality: int = 90, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def _photos(source: str, spec: DemoSpec, rng: np.random.Generator):
    """(lesion index, lesion, image, true skin ITA) for every photograph of the source.

    The small demo draws every image before its metadata (the random stream, and so the versioned
    demo files, depend on that order); the scale profile streams them, so memory holds one image.
    Skin tones come from a stream of their own, so the rest of the demo is drawn as before."""
    tones = rng.spawn(1)[0]

    def gen():
        n_mal = int(round(spec.lesions * spec.malignant))
        labels = ["malignant"] * n_mal + ["benign"] * (spec.lesions - n_mal)
        rng.shuffle(labels)
        for li, label in enumerate(labels):
            lesion = sample_lesion(label, rng)
            skin, _ = sample_skin(source, tones)
            for _ in range(int(rng.integers(spec.photos[0], spec.photos[1] + 1))):
                yield li, lesion, *_render(lesion, source, spec, rng, skin)

    return gen() if spec.render_short else list(gen())


def _render(lesion: Lesion, source: str, spec: DemoSpec, rng: np.random.Generator,
            skin: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """The photograph and the ITA of its skin as photographed (NaN in the scale profile: not measured)."""
    w, h = spec.size
    if not spec.render_short:
        img, truth = render_with_truth(lesion, STYLES[source], w, h, rng, skin_rgb=skin)
        return img, round(photographed_ita(truth), 2)
    if min(w, h) <= spec.render_short:
        return render(lesion, STYLES[source], w, h, rng, skin_rgb=skin), float("nan")
    k = spec.render_short / min(w, h)
    small = render(lesion, STYLES[source], max(int(round(w * k)), 1), max(int(round(h * k)), 1), rng, skin_rgb=skin)
    import cv2

    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), float("nan")


TRUTH_FILE = "phantom_skin_truth.csv"  # demo only: the skin tone each phantom was photographed with


def _note(truth: list | None, source: str, image_id: str, skin_ita: float) -> None:
    if truth is not None:
        truth.append({"source": source, "image_id": image_id, "ita": skin_ita, "skin_tone": skin_tone(skin_ita)})


def _patients(n_lesions: int, rng: np.random.Generator, prefix: str) -> list[str]:
    """Assign lesions to patients, 1-4 lesions each."""
    ids, p = [], 0
    while len(ids) < n_lesions:
        ids += [f"{prefix}{p:07d}"] * int(rng.integers(1, 5))
        p += 1
    return ids[:n_lesions]


def write_ham10000(root: Path, spec: DemoSpec, rng: np.random.Generator, defects: bool,
                   truth: list | None = None) -> list[tuple[str, Path, dict]]:
    """Writes the HAM10000 layout; returns (image_id, file, metadata row) of every image."""
    root.mkdir(parents=True, exist_ok=True)
    rows, images = [], []
    for i, (li, lesion, img, skin_ita) in enumerate(_photos("ham10000", spec, rng)):
        image_id = f"ISIC_{24306 + i:07d}"
        _note(truth, "ham10000", image_id, skin_ita)
        dx_pool = HAM_MALIGNANT_DX if lesion.label == "malignant" else HAM_BENIGN_DX
        dx = dx_pool[int(rng.choice(len(dx_pool), p=[0.6, 0.3, 0.1] if len(dx_pool) == 3 else [0.7, 0.2, 0.05, 0.05]))]
        rows.append(dict(
            lesion_id=f"HAM_{li:07d}", image_id=image_id, dx=dx,
            dx_type="histo" if lesion.label == "malignant" else str(rng.choice(["follow_up", "consensus", "histo"])),
            age=float(rng.integers(20, 85) // 5 * 5), sex=str(rng.choice(["male", "female"])),
            localization=str(rng.choice(["back", "lower extremity", "trunk", "face", "abdomen"])),
        ))
        part = "HAM10000_images_part_1" if i % 2 == 0 else "HAM10000_images_part_2"
        (root / part).mkdir(exist_ok=True)
        if defects and i == 3:
            # A phone-style JPEG stored sideways with an EXIF orientation tag: must be rotated, kept.
            exif = Image.Exif()
            exif[0x0112] = 6
            data = _jpeg(np.ascontiguousarray(np.rot90(img, 1)), exif=exif)
        else:
            data = _jpeg(img)
        (root / part / f"{image_id}.jpg").write_bytes(data)
        images.append((image_id, root / part / f"{image_id}.jpg", rows[-1]))
        if i == 5:
            orphan = data
    meta = pd.DataFrame(rows)
    if defects:
        # Truncated download, an image listed but missing, an orphan image, a duplicated row.
        trunc = root / "HAM10000_images_part_1" / f"{meta.image_id[0]}.jpg"
        trunc.write_bytes(trunc.read_bytes()[: len(trunc.read_bytes()) // 2])
        missing = dict(meta.iloc[1]); missing["image_id"] = "ISIC_9990001"
        (root / "HAM10000_images_part_2" / "ISIC_9990002.jpg").write_bytes(orphan)
        meta = pd.concat([meta, pd.DataFrame([missing, dict(meta.iloc[7])])], ignore_index=True)
    meta.to_csv(root / "HAM10000_metadata.csv", index=False)
    return images


def write_isic2019(root: Path, spec: DemoSpec, rng: np.random.Generator, defects: bool,
                   ham_images: list, republish: slice = slice(10, 16), truth: list | None = None) -> None:
    img_dir = root / "ISIC_2019_Training_Input"
    img_dir.mkdir(parents=True, exist_ok=True)
    gt, meta = [], []
    for i, (li, lesion, img, skin_ita) in enumerate(_photos("isic2019", spec, rng)):
        image_id = f"ISIC_{60000 + i:07d}"
        _note(truth, "isic2019", image_id, skin_ita)
        if lesion.label == "malignant":
            cls = str(rng.choice(["MEL", "BCC", "AK", "SCC"], p=[0.5, 0.3, 0.1, 0.1]))
        else:
            cls = str(rng.choice(["NV", "BKL", "DF", "VASC"], p=[0.7, 0.2, 0.05, 0.05]))
        gt.append({"image": image_id, **{c: float(c == cls) for c in ISIC2019_CLASSES}})
        meta.append(dict(image=image_id, age_approx=float(rng.integers(3, 17) * 5),
                         anatom_site_general=str(rng.choice(SITES)),
                         lesion_id="" if rng.random() < 0.2 else f"BCN_{li:07d}",
                         sex=str(rng.choice(["male", "female"]))))
        if defects and i == 8:
            # A 16-bit grayscale PNG (some scanners export these): converted, kept.
            Image.fromarray(img.mean(axis=2).astype(np.uint16) * 257).save(img_dir / f"{image_id}.png")
        else:
            (img_dir / f"{image_id}.jpg").write_bytes(_jpeg(img))
    # ISIC 2019 re-publishes HAM10000: same id, same file, same lesion.
    for image_id, ham_file, row in ham_images[republish]:
        cls = {"mel": "MEL", "bcc": "BCC", "akiec": "AK", "nv": "NV", "bkl": "BKL", "df": "DF", "vasc": "VASC"}[row["dx"]]
        gt.append({"image": image_id, **{c: float(c == cls) for c in ISIC2019_CLASSES}})
        meta.append(dict(image=image_id, age_approx=row["age"], anatom_site_general="torso",
                         lesion_id=row["lesion_id"], sex=row["sex"]))
        (img_dir / f"{image_id}.jpg").write_bytes(ham_file.read_bytes())
    if defects:
        gt[2].update({"MEL": 1.0, "NV": 1.0})  # two diagnoses at once
        gt[4].update({c: float(c == "UNK") for c in ISIC2019_CLASSES})  # unknown diagnosis
        (img_dir / f"{gt[6]['image']}.jpg").write_text("<html>403 Forbidden</html>")  # not an image
    pd.DataFrame(gt).to_csv(root / "ISIC_2019_Training_GroundTruth.csv", index=False)
    pd.DataFrame(meta).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)


def write_isic2020(root: Path, spec: DemoSpec, rng: np.random.Generator, defects: bool, duplicates: int = 0,
                   truth: list | None = None) -> None:
    """`duplicates` > 0: that many images published twice under two ids (re-encoded), listed in
    ISIC_2020_Training_Duplicates.csv as the real archive does."""
    img_dir = root / "train"
    img_dir.mkdir(parents=True, exist_ok=True)
    photos = _photos("isic2020", spec, rng)
    patients = _patients(spec.lesions, rng, "IP_")
    rows, pairs = [], []
    every = max(spec.lesions // duplicates, 1) if duplicates else 0
    for i, (li, lesion, img, skin_ita) in enumerate(photos):
        image_name = f"ISIC_{80000 + i:07d}"
        _note(truth, "isic2020", image_name, skin_ita)
        mal = lesion.label == "malignant"
        rows.append(dict(
            image_name=image_name, patient_id=patients[li], sex=str(rng.choice(["male", "female"])),
            age_approx=float(rng.integers(4, 17) * 5), anatom_site_general_challenge=str(rng.choice(SITES)),
            diagnosis="melanoma" if mal else str(rng.choice(["nevus", "unknown", "seborrheic keratosis"])),
            benign_malignant="malignant" if mal else "benign", target=int(mal),
        ))
        if defects and i == 5:
            Image.fromarray(img).convert("CMYK").save(img_dir / f"{image_name}.jpg", quality=90)
        elif defects and i == 6:
            Image.fromarray(img).convert("L").save(img_dir / f"{image_name}.jpg", quality=90)
        elif defects and i == 9:
            (img_dir / f"{image_name}.jpg").write_bytes(_jpeg(img[:20, :20]))  # too small
        else:
            (img_dir / f"{image_name}.jpg").write_bytes(_jpeg(img))
        if every and i % every == every // 2 and len(pairs) < duplicates:  # published again under a new id
            copy = dict(rows[-1], image_name=f"ISIC_{90000000 + len(pairs):08d}")
            (img_dir / f"{copy['image_name']}.jpg").write_bytes(_jpeg(img, quality=85))
            pairs.append({"image_name_1": image_name, "image_name_2": copy["image_name"], "row": copy})
    rows += [p.pop("row") for p in pairs]
    if defects:
        rows[11]["benign_malignant"] = "benign" if rows[11]["target"] else "malignant"  # conflicting
        rows.append(dict(rows[12], image_name="../../../etc/passwd"))  # path traversal
    if pairs:
        pd.DataFrame(pairs).to_csv(root / "ISIC_2020_Training_Duplicates.csv", index=False)
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)


def write_isic2024(root: Path, spec: DemoSpec, rng: np.random.Generator, defects: bool, truth: list | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    patients = _patients(spec.lesions, rng, "IP_9")
    rows = []
    with h5py.File(root / "train-image.hdf5", "w") as f:
        for i, (li, lesion, img, skin_ita) in enumerate(_photos("isic2024", spec, rng)):
            isic_id = f"ISIC_{100000 + i:07d}"
            _note(truth, "isic2024", isic_id, skin_ita)
            mal = lesion.label == "malignant"
            rows.append(dict(isic_id=isic_id, target=int(mal), patient_id=patients[li],
                             age_approx=float(rng.integers(6, 17) * 5), sex=str(rng.choice(["male", "female"])),
                             anatom_site_general=str(rng.choice(SITES)),
                             lesion_id=f"IL_{li:07d}" if mal else "",
                             iddx_1="Malignant" if mal else "Benign", attribution="Demo phantom"))
            data = _jpeg(img)
            if defects and i == 2:
                data = data[:30] + bytes(rng.integers(0, 256, 200, dtype=np.uint8))  # corrupt entry
            if defects and i == 4:
                continue  # metadata row whose image never made it into the hdf5
            f.create_dataset(isic_id, data=np.bytes_(data))
    pd.DataFrame(rows).to_csv(root / "train-metadata.csv", index=False)


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
        (root / f"{isic_id}.jpg").write_bytes(_jpeg(img))
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
