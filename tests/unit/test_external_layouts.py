"""External test set layouts (dermsynth.data.sources.external), written by hand as each archive ships them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermsynth.data import records as R
from dermsynth.data.sources import external
from dermsynth.data.sources.isic_archive import ArchivePolicy

QUARANTINE = ArchivePolicy("quarantine", "quarantine", ("dermoscopic",))
AS_BENIGN = ArchivePolicy("benign", "quarantine", ("dermoscopic",))
AS_MALIGNANT = ArchivePolicy("malignant", "quarantine", ("dermoscopic",))


def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def _by_id(res):
    return {r.image_id: r for r in res.records}, {q.image_id: q for q in res.quarantined}


def _ddi(root, label_column="malignant", yes="True", no="False"):
    folder = root / "ddi"
    for i in (1, 2, 3):
        _image(folder / "images" / f"{i:06d}.png", i)
    _csv(folder / "ddi_metadata.csv", [
        {"DDI_ID": 1, "DDI_file": "000001.png", "skin_tone": 12, label_column: yes, "disease": "melanoma"},
        {"DDI_ID": 2, "DDI_file": "000002.png", "skin_tone": 34, label_column: no, "disease": "nevus"},
        {"DDI_ID": 3, "DDI_file": "000003.png", "skin_tone": 56, label_column: "maybe", "disease": "x"},
        {"DDI_ID": 4, "DDI_file": "000004.png", "skin_tone": 56, label_column: no, "disease": "nevus"},
    ])
    return folder


@pytest.mark.parametrize("column, yes, no", [("malignant", "True", "False"), ("malignancy(malig=1)", "1", "0")])
def test_ddi(tmp_path, column, yes, no):
    root = tmp_path / "external"
    res = external.read("ddi", _ddi(root, column, yes, no), root, "my_ddi")
    recs, q = _by_id(res)
    assert set(recs) == {"000001", "000002"}
    assert (recs["000001"].label, recs["000001"].fitzpatrick_skin_type) == ("malignant", "I-II")
    assert (recs["000002"].label, recs["000002"].fitzpatrick_skin_type) == ("benign", "III-IV")
    assert recs["000001"].file == "ddi/images/000001.png" and recs["000001"].source == "my_ddi"
    assert recs["000001"].diagnosis == "melanoma" and recs["000001"].lesion_id == "1"
    assert recs["000001"].skin_tone_class == ""
    assert {k: v.reason for k, v in q.items()} == {"000003": R.UNKNOWN_LABEL, "000004": R.MISSING_FILE}
    assert q["000003"].source == "my_ddi" and "maybe" in q["000003"].detail


def test_ddi_without_a_label_column_is_an_error(tmp_path):
    folder = tmp_path / "ddi"
    _csv(folder / "ddi_metadata.csv", [{"DDI_file": "000001.png", "skin_tone": 12}])
    with pytest.raises(R.IngestError, match="no label column"):
        external.read("ddi", folder, tmp_path, "ddi")


def _pad(root):
    folder = root / "pad"
    rows = []
    for i, (dx, fitz) in enumerate([("BCC", "3"), ("MEL", ""), ("SCC", "6.0"), ("NEV", "1"), ("SEK", "2"),
                                    ("ACK", "4"), ("XYZ", "4")]):
        img = f"PAT_{i}_{i + 100}_{i + 900}.png"
        _image(folder / f"imgs_part_{i % 3 + 1}" / img, i)
        rows.append({"patient_id": f"PAT_{i}", "lesion_id": i + 100, "img_id": img, "diagnostic": dx,
                     "fitspatrick": fitz, "gender": "FEMALE" if i else "MALE", "age": 20 + 10 * i,
                     "region": ["ARM", "FACE", "CHEST", "THIGH", "BACK", "NOSE", "LIP"][i]})
    rows.append({"patient_id": "PAT_9", "lesion_id": 9, "img_id": "PAT_9_9_9.png", "diagnostic": "MEL",
                 "fitspatrick": "2", "gender": "", "age": "", "region": ""})  # image not there
    _csv(folder / "metadata.csv", rows)
    return folder


def test_pad_ufes_20_labels_skin_types_and_attributes(tmp_path):
    root = tmp_path / "external"
    res = external.read("pad_ufes_20", _pad(root), root, "pad", QUARANTINE)
    recs, q = _by_id(res)
    labels = {k.split("_")[1]: v.label for k, v in recs.items()}
    assert labels == {"0": "malignant", "1": "malignant", "2": "malignant", "3": "benign", "4": "benign"}
    fitz = {k.split("_")[1]: v.fitzpatrick_skin_type for k, v in recs.items()}
    assert fitz == {"0": "III", "1": "", "2": "VI", "3": "I", "4": "II"}
    r0 = recs["PAT_0_100_900"]
    assert r0.file == "pad/imgs_part_1/PAT_0_100_900.png" and r0.source == "pad"
    assert (r0.patient_id, r0.lesion_id, r0.diagnosis) == ("PAT_0", "100", "BCC")
    assert (r0.sex, r0.age_band, r0.site) == ("male", "18-39", "upper_extremity")
    assert recs["PAT_3_103_903"].site == "lower_extremity" and recs["PAT_1_101_901"].sex == "female"
    assert {k: v.reason for k, v in q.items()} == {"PAT_5_105_905": R.INDETERMINATE, "PAT_6_106_906": R.UNKNOWN_LABEL,
                                                   "PAT_9_9_9": R.MISSING_FILE}


@pytest.mark.parametrize("policy, label", [(AS_BENIGN, "benign"), (AS_MALIGNANT, "malignant")])
def test_pad_ufes_20_actinic_keratosis_follows_the_policy(tmp_path, policy, label):
    root = tmp_path / "external"
    recs, q = _by_id(external.read("pad_ufes_20", _pad(root), root, "pad", policy))
    assert recs["PAT_5_105_905"].label == label and recs["PAT_5_105_905"].site == "head_neck"
    assert "PAT_5_105_905" not in q


def test_fitzpatrick17k(tmp_path):
    root = tmp_path / "external"
    folder = root / "f17k"
    ids = [f"{i:032x}" for i in range(5)]
    for i, h in enumerate(ids[:4]):
        _image(folder / "images" / "sub" / f"{h}.jpg", i)
    _csv(folder / "fitzpatrick17k.csv", [
        {"md5hash": ids[0], "fitzpatrick_scale": 5, "fitzpatrick_centaur": 1, "label": "melanoma",
         "three_partition_label": "malignant"},
        {"md5hash": ids[1], "fitzpatrick_scale": -1, "fitzpatrick_centaur": 3, "label": "nevus",
         "three_partition_label": "benign"},
        {"md5hash": ids[2], "fitzpatrick_scale": 2, "fitzpatrick_centaur": 2, "label": "psoriasis",
         "three_partition_label": "non-neoplastic"},
        {"md5hash": ids[3], "fitzpatrick_scale": 2, "fitzpatrick_centaur": 2, "label": "x",
         "three_partition_label": "other"},
        {"md5hash": ids[4], "fitzpatrick_scale": 2, "fitzpatrick_centaur": 2, "label": "nevus",
         "three_partition_label": "benign"},
    ])
    res = external.read("fitzpatrick17k", folder, root, "f17k", QUARANTINE)
    recs, q = _by_id(res)
    assert set(recs) == {ids[0], ids[1]}
    assert (recs[ids[0]].label, recs[ids[0]].fitzpatrick_skin_type, recs[ids[0]].diagnosis) == (
        "malignant", "V", "melanoma")
    assert (recs[ids[1]].label, recs[ids[1]].fitzpatrick_skin_type) == ("benign", "")  # -1: unknown, not centaur's
    assert recs[ids[0]].file == f"f17k/images/sub/{ids[0]}.jpg"
    assert {k: v.reason for k, v in q.items()} == {ids[2]: R.UNKNOWN_LABEL, ids[3]: R.UNKNOWN_LABEL,
                                                   ids[4]: R.MISSING_FILE}
    assert q[ids[2]].detail == "three_partition_label 'non-neoplastic': not a neoplasm"


def test_fitzpatrick17k_without_the_scale_column_uses_centaur(tmp_path):
    folder = tmp_path / "f17k"
    _image(folder / "a.jpg")
    _csv(folder / "fitzpatrick17k.csv", [{"md5hash": "a", "fitzpatrick_centaur": 4, "three_partition_label": "benign"}])
    (rec,) = external.read("fitzpatrick17k", folder, tmp_path, "f17k").records
    assert rec.fitzpatrick_skin_type == "IV"


def _milk(root, truth=True):
    folder = root / "milk"
    inp = folder / "MILK10k_Training_Input"
    meta = []

    def pair(n, lesion, tone, **row):
        for k, itype in enumerate(("clinical: close-up", "dermoscopic")):
            isic = f"ISIC_{n + k:07d}"
            _image(inp / lesion / f"{isic}.jpg", n + k)
            meta.append({"lesion_id": lesion, "isic_id": isic, "image_type": itype, "skin_tone_class": tone,
                         "sex": "female", "age_approx": 65, "anatom_site_general": "upper extremity", **row})

    pair(0, "IL_0000001", 0, diagnosis_1="Malignant", diagnosis_2="Malignant epidermal proliferations")
    pair(2, "IL_0000002", 5, diagnosis_1="")  # ground truth: NV
    pair(4, "IL_0000003", 3, diagnosis_1="")  # ground truth: AKIEC
    pair(6, "IL_0000004", 2, diagnosis_1="")  # ground truth: INF
    pair(8, "IL_0000005", 4, diagnosis_1="")  # no ground truth row
    pair(10, "IL_0000006", 1, diagnosis_1="Indeterminate")
    _csv(folder / "MILK10k_Training_Metadata.csv", meta)
    if truth:
        classes = list(external.MILK_LABELS)
        _csv(folder / "MILK10k_Training_GroundTruth.csv", [
            {"lesion_id": lesion, **{c: float(c == hot) for c in classes}}
            for lesion, hot in [("IL_0000001", "BCC"), ("IL_0000002", "NV"), ("IL_0000003", "AKIEC"),
                                ("IL_0000004", "INF"), ("IL_0000006", "AKIEC")]])
    return folder


def test_milk10k_dermoscopic_images_labelled_from_diagnosis_1_or_the_ground_truth(tmp_path):
    root = tmp_path / "external"
    res = external.read("milk10k", _milk(root), root, "milk", QUARANTINE)
    recs, q = _by_id(res)
    assert set(recs) == {"ISIC_0000001", "ISIC_0000003"}
    mal, ben = recs["ISIC_0000001"], recs["ISIC_0000003"]
    assert (mal.label, mal.skin_tone_class, mal.fitzpatrick_skin_type, mal.lesion_id) == ("malignant", "0", "", "IL_0000001")
    assert mal.file == "milk/MILK10k_Training_Input/IL_0000001/ISIC_0000001.jpg" and mal.source == "milk"
    assert (mal.sex, mal.age_band, mal.site) == ("female", "60-79", "upper_extremity")
    assert (ben.label, ben.skin_tone_class, ben.diagnosis) == ("benign", "5", "NV")
    reasons = {k: v.reason for k, v in q.items()}
    for n in (0, 2, 4, 6, 8, 10):  # every clinical close-up, whatever its label
        assert reasons.pop(f"ISIC_{n:07d}") == "image type 'clinical: close-up'"
    assert reasons == {"ISIC_0000005": R.INDETERMINATE, "ISIC_0000007": R.UNKNOWN_LABEL,
                       "ISIC_0000009": R.UNKNOWN_LABEL, "ISIC_0000011": R.INDETERMINATE}
    assert q["ISIC_0000007"].detail == "ground truth INF (inflammatory): not a neoplasm" and "IL_0000005" in q["ISIC_0000009"].detail


def test_milk10k_under_other_policies(tmp_path):
    root = tmp_path / "external"
    both = ArchivePolicy("malignant", "quarantine", ("dermoscopic", "clinical: close-up"))
    recs, q = _by_id(external.read("milk10k", _milk(root), root, "milk", both))
    assert recs["ISIC_0000005"].label == "malignant" and recs["ISIC_0000011"].label == "malignant"
    assert recs["ISIC_0000004"].label == "malignant"  # the clinical image of the AKIEC lesion is kept too
    assert {v.reason for v in q.values()} == {R.UNKNOWN_LABEL}  # INF and no ground truth, both images each
    assert len(q) == 4


def test_milk10k_without_ground_truth(tmp_path):
    root = tmp_path / "external"
    recs, q = _by_id(external.read("milk10k", _milk(root, truth=False), root, "milk", QUARANTINE))
    assert set(recs) == {"ISIC_0000001"}
    assert q["ISIC_0000003"].reason == R.UNKNOWN_LABEL


def test_generic_csv(tmp_path):
    root = tmp_path / "external"
    folder = root / "mine"
    for i, p in enumerate(["a.png", "sub/b.jpg", "c.png", "d.png", "unlisted.png"]):
        _image(folder / p, i)
    _image(tmp_path / "secret.png")
    (folder / "escape.png").symlink_to(tmp_path / "secret.png")
    _csv(folder / "labels.csv", [
        {"path": "a.png", "label": "Malignant", "fitzpatrick": "12", "skin_tone_class": "", "sex": "M"},
        {"path": "sub/b.jpg", "label": "0", "fitzpatrick": "iv", "skin_tone_class": "3", "image_id": "B1"},
        {"path": "c.png", "label": "1", "fitzpatrick": "-1"},
        {"path": "d.png", "label": "unsure", "fitzpatrick": "2"},
        {"path": "../../secret.png", "label": "benign", "image_id": "up"},
        {"path": "escape.png", "label": "benign"},
        {"path": "gone.png", "label": "benign"},
    ])
    _csv(folder / "other.csv", [{"x": 1}])  # labels.csv is preferred
    res = external.read("csv", folder, root, "mine")
    recs, q = _by_id(res)
    assert {k: (v.label, v.fitzpatrick_skin_type, v.skin_tone_class, v.file) for k, v in recs.items()} == {
        "a": ("malignant", "I-II", "", "mine/a.png"), "B1": ("benign", "IV", "3", "mine/sub/b.jpg"),
        "c": ("malignant", "", "", "mine/c.png")}
    assert recs["a"].sex == "male" and recs["a"].source == "mine"
    assert {k: v.reason for k, v in q.items()} == {"d": R.UNKNOWN_LABEL, "up": R.UNSAFE_PATH,
                                                   "escape": R.UNSAFE_PATH, "gone": R.MISSING_FILE}
    assert len(res.quarantined) == 4  # the unlisted image is no orphan


def test_generic_csv_needs_one_csv(tmp_path):
    folder = tmp_path / "mine"
    _csv(folder / "x.csv", [{"path": "a.png", "label": 1}])
    _csv(folder / "y.csv", [{"path": "a.png", "label": 1}])
    with pytest.raises(R.IngestError, match=r"x\.csv.*y\.csv"):
        external.read("csv", folder, tmp_path, "mine")
    assert external.detect(folder) is None


def test_detect_each_layout(tmp_path):
    root = tmp_path / "external"
    folders = {"ddi": _ddi(root), "pad_ufes_20": _pad(root), "milk10k": _milk(root)}
    folders["fitzpatrick17k"] = root / "f17k"
    _csv(folders["fitzpatrick17k"] / "fitzpatrick17k.csv", [{"md5hash": "a", "three_partition_label": "benign"}])
    folders["csv"] = root / "mine"
    _csv(folders["csv"] / "whatever.csv", [{"path": "a.png", "label": 1}])
    assert {layout: external.detect(f) for layout, f in folders.items()} == {k: k for k in external.LAYOUTS}
    isic = root / "isic"  # an ISIC Archive download's metadata.csv is not PAD-UFES-20's
    _csv(isic / "metadata.csv", [{"isic_id": "ISIC_1", "diagnosis_1": "Benign"}])
    (root / "empty").mkdir()
    assert external.detect(isic) is None and external.detect(root / "empty") is None


def test_unknown_layout_and_missing_metadata(tmp_path):
    with pytest.raises(R.IngestError, match="'isic'.*ddi, pad_ufes_20, fitzpatrick17k, milk10k, csv"):
        external.read("isic", tmp_path, tmp_path, "x")
    with pytest.raises(R.IngestError, match=str(tmp_path)):
        external.read("milk10k", tmp_path, tmp_path, "x")


@pytest.mark.parametrize("value, expected", [("1", "I"), ("6.0", "VI"), ("iii", "III"), ("34", "III-IV"),
                                             ("v-vi", "V-VI"), ("-1", ""), ("", ""), ("7", ""), ("nan", "")])
def test_fitzpatrick_vocabulary(value, expected):
    assert external.fitzpatrick(value) == expected


@pytest.mark.parametrize("build, layout", [(_ddi, "ddi"), (_pad, "pad_ufes_20"), (_milk, "milk10k")])
def test_each_layout_is_prepared_for_evaluation_with_every_record_and_its_skin_type(tmp_path, build, layout):
    """What a reader keeps is what the external stage prepares: one image per record, its label and the
    skin type its archive reports carried into the manifest the classifiers are evaluated on."""
    from dermsynth.contracts import EXTERNAL_COLUMNS
    from dermsynth.data.preprocess import PrepConfig
    from dermsynth.data.testsets import prepare_external

    root = tmp_path / "raw" / "external"
    folder = build(root)
    res = external.read(layout, folder, root, "ext", QUARANTINE)
    none = pd.DataFrame({"image_id": pd.Series(dtype=str), "phash": pd.Series(dtype=str)})
    manifest, quarantine = prepare_external("ext", layout, folder.name, tmp_path / "raw", tmp_path / "data/testsets",
                                            tmp_path, PrepConfig(size=32), none, 4, min_size=32, workers=1,
                                            policy=QUARANTINE)
    assert list(manifest.columns) == EXTERNAL_COLUMNS and len(manifest) == len(res.records) > 0
    by_id = {r.image_id: r for r in res.records}
    for row in manifest.itertuples():
        rec = by_id[row.image_id]
        assert (row.label, row.fitzpatrick_skin_type, row.skin_tone_class) == (
            rec.label, rec.fitzpatrick_skin_type, rec.skin_tone_class)
        assert (tmp_path / row.path).is_file() and row.split == "external"
    assert sorted(quarantine.image_id) == sorted(q.image_id for q in res.quarantined)


def test_the_schema_and_the_readers_know_the_same_layouts():
    from dermsynth.params import EXTERNAL_LAYOUTS

    assert EXTERNAL_LAYOUTS == external.LAYOUTS
