"""Raw data written by hand the way the real archives ship it, not by dermsynth.demo.

Covers quirks the demo generator never produces: nested zip folders, `_downsampled` ids,
upper-case extensions, BOM headers, float one-hot cells, extra columns, whitespace, hdf5 entries
stored as opaque or uint8 arrays, and one folder of HAM images instead of two parts.
"""
import io

import h5py
import numpy as np
import pytest
from PIL import Image

from dermsynth.data import records as R
from dermsynth.data.ingest import ingest


def _jpeg(seed: int, size=(90, 70)) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def test_isic2019_kaggle_zip_layout(tmp_path):
    src = tmp_path / "isic2019"
    inner = src / "ISIC_2019_Training_Input" / "ISIC_2019_Training_Input"
    inner.mkdir(parents=True)
    (inner / "ISIC_0000000.jpg").write_bytes(_jpeg(0))
    (inner / "ISIC_0000002_downsampled.JPG").write_bytes(_jpeg(1))
    (inner / "ISIC_0000003.jpg").write_bytes(_jpeg(2)[:200])  # truncated
    (inner / "LICENSE.txt").write_text("CC-BY-NC")  # not an image extension: not an orphan either
    (inner / "ATTRIBUTION.csv").write_text("a,b")
    header = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
    body = ("ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
            "ISIC_0000002_downsampled,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
            "ISIC_0000003,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
            "ISIC_0000004,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0\n")
    (src / "ISIC_2019_Training_GroundTruth.csv").write_bytes("\ufeff".encode() + (header + body).encode())
    (src / "ISIC_2019_Training_Metadata.csv").write_text(
        "image,age_approx,anatom_site_general,lesion_id,sex\n"
        "ISIC_0000000,55.0,anterior torso,,female\nISIC_0000002_downsampled,30.0,,BCN_0000001,male\n")
    res = ingest(tmp_path, min_size=32, workers=1)
    m = res.manifest.set_index("image_id")
    assert m.loc["ISIC_0000000", "label"] == "benign"
    assert m.loc["ISIC_0000002_downsampled", "label"] == "malignant"
    assert m.loc["ISIC_0000002_downsampled", "lesion_id"] == "BCN_0000001"
    q = dict(zip(res.quarantine.image_id, res.quarantine.reason))
    assert q == {"ISIC_0000003": R.TRUNCATED, "ISIC_0000004": R.UNKNOWN_LABEL}


def test_ham10000_single_folder_with_messy_cells(tmp_path):
    src = tmp_path / "ham10000"
    (src / "images").mkdir(parents=True)
    for i in range(4):
        (src / "images" / f"ISIC_00{i}.jpg").write_bytes(_jpeg(i))
    (src / "images" / "ISIC_00x.jpeg").write_bytes(b"\x89PNG\r\n garbage")  # orphan, and broken
    (src / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n"
        "HAM_1, ISIC_000 ,MEL ,histo,50,male,back,vidir\n"
        "HAM_1,ISIC_001,mel,histo,50,male,back,vidir\n"
        "HAM_2,ISIC_002,nv,follow_up,,female,,rosendahl\n"
        "HAM_3,ISIC_003,scc,histo,70,male,face,vidir\n"
        "HAM_2,ISIC_002,bkl,consensus,,female,,rosendahl\n")
    res = ingest(tmp_path, min_size=32, workers=1)
    assert sorted(res.manifest.image_id) == ["ISIC_000", "ISIC_001"]
    assert set(res.manifest.label) == {"malignant"}
    q = res.quarantine.groupby("image_id").reason.apply(sorted).to_dict()
    assert q == {"ISIC_002": [R.CONFLICTING, R.CONFLICTING], "ISIC_003": [R.UNKNOWN_LABEL], "ISIC_00x": [R.ORPHAN]}


def test_isic2020_float_targets_and_extensions(tmp_path):
    src = tmp_path / "isic2020"
    (src / "train").mkdir(parents=True)
    (src / "train" / "ISIC_1.jpg").write_bytes(_jpeg(1))
    (src / "train" / "ISIC_2.JPEG").write_bytes(_jpeg(2))
    (src / "train" / "ISIC_3.jpg").write_bytes(_jpeg(3))
    (src / "train.csv").write_text(
        "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
        "ISIC_1,IP_1,male,45,torso,unknown,benign,0\n"
        "ISIC_2,IP_1,male,45,torso,melanoma,malignant,1.0\n"
        "ISIC_3,IP_2,female,,,,,\n")
    res = ingest(tmp_path, min_size=32, workers=1)
    assert dict(zip(res.manifest.image_id, res.manifest.label)) == {"ISIC_1": "benign", "ISIC_2": "malignant"}
    assert res.manifest.patient_id.tolist() == ["IP_1", "IP_1"]
    assert res.quarantine.reason.tolist() == [R.UNKNOWN_LABEL]


@pytest.mark.parametrize("storage", ["bytes", "void", "uint8"])
def test_isic2024_hdf5_storage_variants(tmp_path, storage):
    src = tmp_path / "isic2024"
    src.mkdir()
    with h5py.File(src / "train-image.hdf5", "w") as f:
        for i in range(3):
            data = _jpeg(i)
            value = {"bytes": np.bytes_(data), "void": np.void(data),
                     "uint8": np.frombuffer(data, dtype=np.uint8)}[storage]
            f.create_dataset(f"ISIC_{i}", data=value)
        f.create_dataset("ISIC_9", data=np.bytes_(b"\xff\xd8 broken"))
    (src / "train-metadata.csv").write_text(
        "isic_id,target,patient_id,age_approx,lesion_id\nISIC_0,0,IP_1,60,\nISIC_1,1,IP_1,60,IL_1\n"
        "ISIC_2,0,IP_2,,\nISIC_9,0,IP_3,,\nISIC_7,0,IP_3,,\n")
    res = ingest(tmp_path, min_size=32, workers=1)
    assert sorted(res.manifest.image_id) == ["ISIC_0", "ISIC_1", "ISIC_2"]
    assert (res.manifest.width == 90).all()
    q = dict(zip(res.quarantine.image_id, res.quarantine.reason))
    assert q == {"ISIC_9": R.CORRUPT_HDF5, "ISIC_7": R.MISSING_FILE}
