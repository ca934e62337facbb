"""The four training archives in their native layouts: HAM10000, ISIC 2019, ISIC 2020 and ISIC 2024 (hdf5).

Several photographs per lesion, several lesions per patient (ISIC 2020/2024), HAM10000 images
re-published in ISIC 2019 under the same ids and, with `defects=True`, the archive's share of the bad
inputs the ingest stage must quarantine.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from dermsynth.demo.photos import DemoSpec, assign_patients, jpeg_bytes, note_truth, photographs
from dermsynth.errors import UserValueError

HAM_MALIGNANT_DX = ["mel", "bcc", "akiec"]
HAM_BENIGN_DX = ["nv", "bkl", "df", "vasc"]
ISIC2019_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
SITES = ["torso", "upper extremity", "lower extremity", "head/neck", "palms/soles"]


def write_ham10000(root: Path, spec: DemoSpec, rng: np.random.Generator, defects: bool,
                   truth: list | None = None) -> list[tuple[str, Path, dict]]:
    """Writes the HAM10000 layout; returns (image_id, file, metadata row) of every image."""
    root.mkdir(parents=True, exist_ok=True)
    rows, images = [], []
    for i, (li, lesion, img, skin_ita) in enumerate(photographs("ham10000", spec, rng)):
        image_id = f"ISIC_{24306 + i:07d}"
        note_truth(truth, "ham10000", image_id, skin_ita)
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
            data = jpeg_bytes(np.ascontiguousarray(np.rot90(img, 1)), exif=exif)
        else:
            data = jpeg_bytes(img)
        (root / part / f"{image_id}.jpg").write_bytes(data)
        images.append((image_id, root / part / f"{image_id}.jpg", rows[-1]))
        if i == 5:
            orphan = data
    meta = pd.DataFrame(rows)
    if defects and len(meta) < 8:  # the planted defects reuse photographs 0, 1, 5 and 7
        raise UserValueError(f"demo HAM10000 with planted defects needs at least 8 photographs, this scale gives "
                             f"{len(meta)}: choose a larger scale, or no defects")
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
    for i, (li, lesion, img, skin_ita) in enumerate(photographs("isic2019", spec, rng)):
        image_id = f"ISIC_{60000 + i:07d}"
        note_truth(truth, "isic2019", image_id, skin_ita)
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
            (img_dir / f"{image_id}.jpg").write_bytes(jpeg_bytes(img))
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
    photos = photographs("isic2020", spec, rng)
    patients = assign_patients(spec.lesions, rng, "IP_")
    rows, pairs = [], []
    every = max(spec.lesions // duplicates, 1) if duplicates else 0
    for i, (li, lesion, img, skin_ita) in enumerate(photos):
        image_name = f"ISIC_{80000 + i:07d}"
        note_truth(truth, "isic2020", image_name, skin_ita)
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
            (img_dir / f"{image_name}.jpg").write_bytes(jpeg_bytes(img[:20, :20]))  # too small
        else:
            (img_dir / f"{image_name}.jpg").write_bytes(jpeg_bytes(img))
        if every and i % every == every // 2 and len(pairs) < duplicates:  # published again under a new id
            copy = dict(rows[-1], image_name=f"ISIC_{90000000 + len(pairs):08d}")
            (img_dir / f"{copy['image_name']}.jpg").write_bytes(jpeg_bytes(img, quality=85))
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
    patients = assign_patients(spec.lesions, rng, "IP_9")
    rows = []
    with h5py.File(root / "train-image.hdf5", "w") as f:
        for i, (li, lesion, img, skin_ita) in enumerate(photographs("isic2024", spec, rng)):
            isic_id = f"ISIC_{100000 + i:07d}"
            note_truth(truth, "isic2024", isic_id, skin_ita)
            mal = lesion.label == "malignant"
            rows.append(dict(isic_id=isic_id, target=int(mal), patient_id=patients[li],
                             age_approx=float(rng.integers(6, 17) * 5), sex=str(rng.choice(["male", "female"])),
                             anatom_site_general=str(rng.choice(SITES)),
                             lesion_id=f"IL_{li:07d}" if mal else "",
                             iddx_1="Malignant" if mal else "Benign", attribution="Demo phantom"))
            data = jpeg_bytes(img)
            if defects and i == 2:
                data = data[:30] + bytes(rng.integers(0, 256, 200, dtype=np.uint8))  # corrupt entry
            if defects and i == 4:
                continue  # metadata row whose image never made it into the hdf5
            f.create_dataset(isic_id, data=np.bytes_(data))
    pd.DataFrame(rows).to_csv(root / "train-metadata.csv", index=False)
