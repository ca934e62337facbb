"""ISIC Archive downloads (data/raw/isic_archive/): isic-cli and snapshot layouts, labels from diagnosis_1,
the policies for indeterminate, altered, synthetic and non-dermoscopic images, site harmonisation, one row
per image across downloads and archives, and the folders no reader recognises. Every test writes small
real files (JPEGs, CSVs) and runs the real ingest on them."""
import csv
import hashlib
import io
import json
import random

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermsynth.check import Report, _raw
from dermsynth.contracts import MANIFEST_COLUMNS
from dermsynth import isic_vocab as V
from dermsynth.data import records as R
from dermsynth.data.ingest import UnrecognisedFolderError, check_usable, ingest
from dermsynth.data.sources import isic_archive
from dermsynth.data.sources.isic_archive import ArchivePolicy, site_of
from dermsynth.data.subgroups import SITES
from dermsynth.params import ParamsError, validate

LEADING = ["isic_id", "attribution", "copyright_license"]
POLICY = ArchivePolicy("quarantine", "quarantine", ("dermoscopic",))


def _jpeg_bytes(key: str, size=(64, 48)) -> bytes:
    """A small JPEG whose pixels depend on `key`: two ids never share bytes (identical bytes are one image)."""
    rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
    img = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _row(isic_id: str, dx: str = "Benign:Benign melanocytic proliferations:Nevus", **fields) -> dict:
    """A metadata row as the archive sends it: the diagnosis path split into diagnosis_1..N, then `fields`."""
    row = {"isic_id": isic_id, "attribution": "Clinic A", "copyright_license": "CC-BY"}
    if dx:
        row.update({f"diagnosis_{k + 1}": v for k, v in enumerate(dx.split(":"))})
    row.update(fields)
    return row


def _download(folder, rows: list[dict], images: str = "", header: list[str] | None = None, write_images=True):
    """A download in `folder`: metadata.csv in isic-cli column order (or `header`), missing values empty,
    and one JPEG per row beside it (isic-cli) or under `images` (the snapshot)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = header or LEADING + sorted({k for r in rows for k in r} - set(LEADING))
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, restval="")
        w.writeheader()
        w.writerows(rows)
    (folder / "attribution.txt").write_text("Clinic A\n")
    (folder / "licenses").mkdir(exist_ok=True)
    (folder / "licenses" / "CC-BY.txt").write_text("CC-BY\n")
    img_dir = folder / images if images else folder
    img_dir.mkdir(exist_ok=True)
    if write_images:
        for r in rows:
            (img_dir / f"{r['isic_id']}.jpg").write_bytes(_jpeg_bytes(r["isic_id"]))
    return folder


def _ingest(raw, **kw):
    return ingest(raw, min_size=32, workers=1, **kw)


def _reasons(res, source="isic_archive"):
    q = res.quarantine[res.quarantine.source == source]
    return dict(zip(q.image_id, q.reason))


def _kept(res, source="isic_archive"):
    return res.manifest[res.manifest.source == source].set_index("image_id")


# --- layouts ---------------------------------------------------------------------------------------------

def test_isic_cli_download_labels_diagnosis_and_carried_columns(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive" / "melanoma-2026", [
        _row("ISIC_0000001", "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive:"
             "Melanoma Invasive, Superficial spreading", fitzpatrick_skin_type="II", copyright_license="CC-BY-NC",
             attribution="Hospital B", lesion_id="IL_0000001", patient_id="IP_0000001", sex="female",
             age_approx="45", pixels_x="64", pixels_y="48", image_type="dermoscopic"),
        _row("ISIC_0000002", "Benign:Benign melanocytic proliferations:Nevus", lesion_id="IL_0000002",
             patient_id="IP_0000001", copyright_license="CC-0", image_type="dermoscopic"),
        _row("ISIC_0000003", "Benign"),
        _row("ISIC_0000004", "Indeterminate:Indeterminate epidermal proliferations:Solar or actinic keratosis"),
        _row("ISIC_0000005", "Unknown"),  # not a diagnosis_1 value
    ])
    res = _ingest(raw)
    m = _kept(res)
    assert list(res.manifest.columns) == MANIFEST_COLUMNS
    assert m.loc["ISIC_0000001", "label"] == "malignant"
    assert m.loc["ISIC_0000001", "diagnosis"] == "Melanoma Invasive, Superficial spreading"  # the deepest level
    assert tuple(m.loc["ISIC_0000001", ["fitzpatrick_skin_type", "copyright_license", "attribution"]]) == (
        "II", "CC-BY-NC", "Hospital B")
    assert tuple(m.loc["ISIC_0000001", ["lesion_id", "patient_id", "sex", "age_band"]]) == (
        "IL_0000001", "IP_0000001", "female", "40-59")
    assert m.loc["ISIC_0000002", "label"] == "benign" and m.loc["ISIC_0000002", "diagnosis"] == "Nevus"
    assert m.loc["ISIC_0000003", "diagnosis"] == "Benign" and m.loc["ISIC_0000003", "fitzpatrick_skin_type"] == ""
    assert m.loc["ISIC_0000001", "file"] == "isic_archive/melanoma-2026/ISIC_0000001.jpg"
    assert _reasons(res) == {"ISIC_0000004": R.INDETERMINATE, "ISIC_0000005": R.UNKNOWN_LABEL}
    s = res.summary()
    assert s["licences"] == {"CC-0": 1, "CC-BY": 1, "CC-BY-NC": 1} and s["quarantined_by_choice"] == 1


@pytest.mark.parametrize("images", ["", "images"])
@pytest.mark.parametrize("at_root", [True, False])
def test_snapshot_and_isic_cli_layouts_read_alike(tmp_path, images, at_root):
    """Images beside metadata.csv (isic-cli) or under images/ (snapshot, no pixels_x/pixels_y, rows by id),
    the source folder itself the download or a subfolder of it."""
    raw = tmp_path / "raw"
    folder = raw / "isic_archive" if at_root else raw / "isic_archive" / "ISIC_images"
    rows = [_row(f"ISIC_00000{i:02d}", "Malignant" if i % 2 else "Benign") for i in range(6)]
    _download(folder, rows, images=images)
    res = _ingest(raw)
    assert len(_kept(res)) == 6 and res.quarantine.empty
    assert _kept(res).label.value_counts().to_dict() == {"benign": 3, "malignant": 3}
    sub = "/".join(p for p in ["isic_archive", "" if at_root else "ISIC_images", images, "ISIC_0000001.jpg"] if p)
    assert _kept(res).loc["ISIC_0000001", "file"] == sub


def test_downloads_side_by_side_use_each_image_once(tmp_path):
    raw = tmp_path / "raw"
    a = _download(raw / "isic_archive" / "a-melanoma", [_row("ISIC_0000001", "Malignant"), _row("ISIC_0000002")])
    _download(raw / "isic_archive" / "b-collection", [_row("ISIC_0000002"), _row("ISIC_0000003")])
    (raw / "isic_archive" / "stray").mkdir()
    (raw / "isic_archive" / "stray" / "ISIC_0000009.jpg").write_bytes(_jpeg_bytes("stray"))
    res = _ingest(raw)
    assert sorted(_kept(res).index) == ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]
    assert _kept(res).loc["ISIC_0000002", "file"] == "isic_archive/a-melanoma/ISIC_0000002.jpg"  # the first download
    q = res.quarantine.set_index("image_id")
    assert q.loc["ISIC_0000002", "reason"] == R.DOWNLOADED_AGAIN
    assert q.loc["ISIC_0000002", "file"] == "isic_archive/b-collection/ISIC_0000002.jpg"
    assert "a-melanoma/ISIC_0000002.jpg (identical bytes)" in q.loc["ISIC_0000002", "detail"]
    assert q.loc["ISIC_0000009", "reason"] == R.ORPHAN and "no download folder" in q.loc["ISIC_0000009", "detail"]
    assert a.is_dir() and res.summary()["quarantined_by_choice"] == 1  # the orphan is a defect, the copy a choice


def test_downloads_that_disagree_on_the_label_keep_neither(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive" / "old", [_row("ISIC_0000001", "Benign"), _row("ISIC_0000002")])
    _download(raw / "isic_archive" / "new", [_row("ISIC_0000001", "Malignant")])
    res = _ingest(raw)
    assert list(_kept(res).index) == ["ISIC_0000002"]
    q = res.quarantine[res.quarantine.image_id == "ISIC_0000001"]
    assert list(q.reason) == [R.CONFLICTING] * 2 and "downloads disagree" in q.detail.iloc[0]


# --- columns and labels ----------------------------------------------------------------------------------

def test_columns_in_any_order_and_any_subset(tmp_path):
    raw = tmp_path / "raw"
    rows = [_row("ISIC_0000001", "Malignant:Malignant epidermal proliferations", anatom_site_1="Trunk",
                 sex="male", lesion_id="IL_1"),
            _row("ISIC_0000002", "", benign_malignant="malignant"),  # an older export: no diagnosis_1
            _row("ISIC_0000003", "", benign_malignant="indeterminate/benign"),
            _row("ISIC_0000004", "", diagnosis="basal cell carcinoma"),  # the legacy diagnosis
            _row("ISIC_0000005", "", diagnosis="AIMP"),
            _row("ISIC_0000006", "", diagnosis="other"),
            _row("ISIC_0000007", ""),  # nothing says benign or malignant
            _row("ISIC_0000008", "Benign", benign_malignant="malignant")]
    header = LEADING + sorted({k for r in rows for k in r} - set(LEADING))
    random.Random(3).shuffle(header)  # isic_id anywhere: columns are found by name
    _download(raw / "isic_archive", rows, header=header)
    res = _ingest(raw)
    m = _kept(res)
    assert m.label.to_dict() == {"ISIC_0000001": "malignant", "ISIC_0000002": "malignant", "ISIC_0000004": "malignant"}
    assert m.loc["ISIC_0000001", "diagnosis"] == "Malignant epidermal proliferations"
    assert m.loc["ISIC_0000004", "diagnosis"] == "basal cell carcinoma"
    assert tuple(m.loc["ISIC_0000001", ["site", "sex", "lesion_id"]]) == ("torso", "male", "IL_1")
    assert _reasons(res) == {"ISIC_0000003": R.INDETERMINATE, "ISIC_0000005": R.INDETERMINATE,
                             "ISIC_0000006": R.UNKNOWN_LABEL, "ISIC_0000007": R.UNKNOWN_LABEL,
                             "ISIC_0000008": R.CONFLICTING}


def test_a_download_with_only_isic_id_and_diagnosis_1(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [{"isic_id": "ISIC_0000001", "diagnosis_1": "Malignant"}],
              header=["isic_id", "diagnosis_1"])
    m = _kept(_ingest(raw))
    assert m.loc["ISIC_0000001", "label"] == "malignant"
    assert tuple(m.loc["ISIC_0000001", ["site", "sex", "age_band", "copyright_license"]]) == (
        "unknown", "unknown", "unknown", "")


@pytest.mark.parametrize("policy", ["quarantine", "benign", "malignant"])
def test_indeterminate_policy(tmp_path, policy):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [
        _row("ISIC_0000001", "Indeterminate:Indeterminate melanocytic proliferations:Atypical Spitz tumor"),
        _row("ISIC_0000002", "Malignant"), _row("ISIC_0000003", "Benign")])
    res = _ingest(raw, archive=ArchivePolicy(policy, "quarantine", ("dermoscopic",)))
    m = _kept(res)
    if policy == "quarantine":
        assert "ISIC_0000001" not in m.index and _reasons(res) == {"ISIC_0000001": R.INDETERMINATE}
        assert "ingest.indeterminate" in res.quarantine.detail.iloc[0]
    else:
        assert m.loc["ISIC_0000001", "label"] == policy and m.loc["ISIC_0000001", "diagnosis"] == "Atypical Spitz tumor"
    assert m.loc["ISIC_0000002", "label"] == "malignant" and m.loc["ISIC_0000003", "label"] == "benign"


def test_every_diagnosis_1_value_of_the_vocabulary_has_a_meaning():
    assert {d.split(":")[0] for d in V.DIAGNOSES} == set(V.LABEL_OF_DIAGNOSIS_1)
    assert set(V.LABEL_OF_LEGACY_DX) == set(V.LEGACY_DX_VALUES)
    for dx in V.DIAGNOSES:
        label = isic_archive.parse_row(_row("ISIC_0000001", dx), ArchivePolicy("malignant", "keep", ("dermoscopic",)))[1]
        assert label == ("benign" if dx.startswith("Benign") else "malignant"), dx


# --- images that are set aside --------------------------------------------------------------------------

def test_synthetic_clinical_and_altered_images_are_set_aside_with_their_reasons(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [
        _row("ISIC_0000001", "Malignant", image_type="dermoscopic", image_manipulation="synthetic"),
        _row("ISIC_0000002", image_type="clinical: close-up"),
        _row("ISIC_0000003", image_type="TBP tile: close-up", tbp_tile_type="3D: white"),
        _row("ISIC_0000004", image_type="dermoscopic", image_manipulation="altered"),
        _row("ISIC_0000005", image_type="dermoscopic", image_manipulation="instrument only"),
        _row("ISIC_0000006", "Malignant"),  # no image_type recorded: kept
    ])
    res = _ingest(raw)
    assert _reasons(res) == {"ISIC_0000001": R.SYNTHETIC, "ISIC_0000002": "image type 'clinical: close-up'",
                             "ISIC_0000003": "image type 'TBP tile: close-up'", "ISIC_0000004": R.ALTERED}
    assert sorted(_kept(res).index) == ["ISIC_0000005", "ISIC_0000006"]
    assert all(R.by_choice(r) for r in _reasons(res).values())
    # a wider policy keeps the clinical and altered images; a synthetic one is never kept
    wide = _ingest(raw, archive=ArchivePolicy("quarantine", "keep", ("dermoscopic", "clinical: close-up")))
    assert _reasons(wide) == {"ISIC_0000001": R.SYNTHETIC, "ISIC_0000003": "image type 'TBP tile: close-up'"}
    assert {"ISIC_0000002", "ISIC_0000004"} <= set(_kept(wide).index)


def test_set_aside_images_do_not_count_as_broken(tmp_path):
    """A download of mostly TBP tiles is not mostly broken: the quarantine limit counts defects only."""
    raw = tmp_path / "raw"
    rows = [_row(f"ISIC_00001{i:02d}", image_type="TBP tile: overview") for i in range(8)]
    rows += [_row("ISIC_0000001", "Malignant", image_type="dermoscopic"), _row("ISIC_0000002", image_type="dermoscopic")]
    _download(raw / "isic_archive", rows)
    (raw / "isic_archive" / "ISIC_0000002.jpg").write_bytes(b"<html>403</html>")  # one broken file
    res = _ingest(raw)
    assert res.summary()["quarantined_fraction"] == 0.9
    check_usable(res, max_quarantine_fraction=0.5)  # 1 broken of the 2 not set aside
    with pytest.raises(R.IngestError, match="not counting the 8 set aside by choice"):
        check_usable(res, max_quarantine_fraction=0.25)


# --- sites -----------------------------------------------------------------------------------------------

def _site_row(path: str, **fields) -> dict:
    return {**{f"anatom_site_{k + 1}": v for k, v in enumerate(path.split(":"))}, **fields}


def test_site_table_covers_every_level_1_and_2_value():
    shallow = {s for s in V.ANATOM_SITES if s.count(":") <= 1}
    assert len(shallow) == 24 and shallow == {k for k in V.SITE_OF_PATH if k.count(":") <= 1}
    assert set(V.SITE_OF_PATH) <= set(V.ANATOM_SITES)  # no entry for a value ISIC does not have
    assert set(V.SITE_OF_PATH.values()) <= set(SITES) and set(V.SITE_OF_SPECIAL) == set(V.SPECIAL_VALUES)


@pytest.mark.parametrize("path", V.ANATOM_SITES)
def test_every_anatom_site_value_maps_to_a_site(path):
    site = site_of(_site_row(path))
    assert site in SITES, (path, site)
    top = {"Head and neck": "head_neck", "Trunk": "torso", "Upper extremity": "upper_extremity",
           "Lower extremity": "lower_extremity", "Anogenital region": "oral_genital"}[path.split(":")[0]]
    acral = path.startswith(("Upper extremity:Hand:Palm of hand", "Lower extremity:Foot:Sole of foot"))
    mucosa = path.startswith(("Head and neck:Head:Face:Mouth", "Head and neck:Head:Face:Oral region:Lip",
                              "Head and neck:Head:Face:Oral region:Lower lip", "Head and neck:Head:Face:Oral region:Upper lip"))
    assert site == ("palms_soles" if acral else "oral_genital" if mucosa else top), path


def test_special_and_legacy_site_columns():
    assert site_of(_site_row("Lower extremity:Foot", anatom_site_special="acral palms or soles")) == "palms_soles"
    assert site_of(_site_row("Head and neck", anatom_site_special="oral or genital")) == "oral_genital"
    assert site_of(_site_row("Upper extremity:Hand", anatom_site_special="fingernail")) == "upper_extremity"
    legacy = {"head/neck": "head_neck", "upper extremity": "upper_extremity", "lower extremity": "lower_extremity",
              "anterior torso": "torso", "posterior torso": "torso", "lateral torso": "torso",
              "palms/soles": "palms_soles", "oral/genital": "oral_genital"}
    for value, site in legacy.items():  # an older export without the hierarchy
        assert site_of({"anatom_site_general": value}) == site
    assert site_of({"anatom_site_1": "Trunk", "anatom_site_general": "head/neck"}) == "torso"  # hierarchy first
    assert site_of({"anatom_site_1": "Nowhere"}) == "unknown" and site_of({}) == "unknown"


# --- republished images ----------------------------------------------------------------------------------

def _isic2019(folder, images: dict[str, tuple[str, bytes]]):
    """An ISIC 2019 folder: one-hot ground truth and the images (id -> (class, bytes))."""
    (folder / "ISIC_2019_Training_Input").mkdir(parents=True)
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    pd.DataFrame([{"image": i, **{c: float(c == cls) for c in classes}} for i, (cls, _) in images.items()]).to_csv(
        folder / "ISIC_2019_Training_GroundTruth.csv", index=False)
    for i, (_, data) in images.items():
        (folder / "ISIC_2019_Training_Input" / f"{i}.jpg").write_bytes(data)


def test_an_id_isic_2019_published_too_is_kept_once(tmp_path):
    raw = tmp_path / "raw"
    shared = _jpeg_bytes("ISIC_0060001")
    _isic2019(raw / "isic2019", {"ISIC_0060001": ("MEL", shared), "ISIC_0060002": ("NV", _jpeg_bytes("ISIC_0060002"))})
    _download(raw / "isic_archive", [
        _row("ISIC_0060001", "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma, NOS",
             copyright_license="CC-BY-NC", attribution="Hospital Clinic", fitzpatrick_skin_type="III",
             lesion_id="IL_0000042"),
        _row("ISIC_0000003")], write_images=False)
    (raw / "isic_archive" / "ISIC_0060001.jpg").write_bytes(shared)
    (raw / "isic_archive" / "ISIC_0000003.jpg").write_bytes(_jpeg_bytes("ISIC_0000003"))
    res = _ingest(raw)
    m = res.manifest.set_index("image_id")
    assert not res.manifest.image_id.duplicated().any()
    kept = m.loc["ISIC_0060001"]
    assert kept.source == "isic2019" and kept.also_in == "isic_archive/ISIC_0060001"  # the challenge copy first
    assert (kept.copyright_license, kept.attribution, kept.fitzpatrick_skin_type, kept.lesion_id) == (
        "CC-BY-NC", "Hospital Clinic", "III", "IL_0000042")  # taken from the archive's copy
    d = res.duplicates
    assert d.to_dict("records") == [{"source": "isic_archive", "image_id": "ISIC_0060001", "kept_source": "isic2019",
                                     "kept_id": "ISIC_0060001", "kind": "same id"}]
    assert m.loc["ISIC_0060002", "copyright_license"] == ""  # the other sources record none
    # the archive's copy kept instead when it comes first
    first = _ingest(raw, source_priority=["isic_archive", "ham10000", "isic2019", "isic2020", "isic2024"])
    assert first.manifest.set_index("image_id").loc["ISIC_0060001", "source"] == "isic_archive"


# --- folders no reader recognises ------------------------------------------------------------------------

def test_an_unrecognised_folder_with_images_fails_ingest_and_is_named(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [_row("ISIC_0000001", "Malignant")])
    (raw / "downloads" / "sub").mkdir(parents=True)
    (raw / "downloads" / "sub" / "a.jpg").write_bytes(_jpeg_bytes("a"))
    with pytest.raises(UnrecognisedFolderError) as e:
        _ingest(raw)
    assert str(e.value).startswith(f"{raw / 'downloads'}: 1 image file(s) in a folder no reader recognises")
    assert len(str(e.value).splitlines()) == 1 and [u.folder for u in e.value.folders] == ["downloads"]
    # a source under another name: the message says which and how to fix it
    (raw / "downloads" / "sub" / "a.jpg").unlink()
    (raw / "HAM10000").mkdir()
    (raw / "HAM10000" / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nHAM_1,ISIC_1,nv\n")
    (raw / "HAM10000" / "ISIC_1.jpg").write_bytes(_jpeg_bytes("ISIC_1"))
    with pytest.raises(UnrecognisedFolderError, match=r"holds ham10000's files: rename it to .*raw/ham10000"):
        _ingest(raw)


def test_an_unrecognised_folder_without_images_is_only_reported(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [_row("ISIC_0000001", "Malignant")])
    (raw / "notes").mkdir()
    (raw / "notes" / "readme.txt").write_text("where the data came from\n")
    (raw / "isic2019").mkdir()  # a source's name, but not its files
    res = _ingest(raw)
    assert len(res.manifest) == 1
    assert res.summary()["unrecognised_folders"] == [{"folder": "isic2019", "images": 0, "looks_like": ""},
                                                     {"folder": "notes", "images": 0, "looks_like": ""}]


def test_the_stage_names_the_folder_in_ingest_json(tmp_path):
    from stages.ingest import run

    raw = tmp_path / "raw"
    _download(raw / "isic_archive", [_row("ISIC_0000001", "Malignant")])
    (raw / "more").mkdir()
    (raw / "more" / "x.png").write_bytes(_jpeg_bytes("x"))
    params = {"paths": {"raw": str(raw), "interim": str(tmp_path / "interim"), "reports": str(tmp_path / "reports")},
              "ingest": validate({})["ingest"]}
    with pytest.raises(UnrecognisedFolderError):
        run(params)
    report = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    assert report["unrecognised_folders"] == [{"folder": "more", "images": 1, "looks_like": ""}]


def test_check_names_the_folders_and_describes_each_download(tmp_path):
    raw = tmp_path / "raw"
    _download(raw / "isic_archive" / "melanoma-2026", [
        _row("ISIC_0000001", "Malignant", image_type="dermoscopic"), _row("ISIC_0000002", image_type="dermoscopic"),
        _row("ISIC_0000003", "Indeterminate", image_type="clinical: overview")])
    (raw / "empty").mkdir()
    (raw / "pictures").mkdir()
    (raw / "pictures" / "p.jpg").write_bytes(_jpeg_bytes("p"))
    rep = Report()
    assert _raw({"paths": {"raw": str(raw)}, "ingest": validate({})["ingest"]}, rep) == 2
    rows = dict(rep.rows)
    assert rows["isic_archive"] == ("isic_archive/melanoma-2026: isic-cli (flat), 3 rows, 3 images, 7 columns "
                                    "(no anatom_site_1, lesion_id, patient_id, image_manipulation); diagnosis_1: "
                                    "Benign 1, Indeterminate 1, Malignant 1; image_type: clinical: overview 1, "
                                    "dermoscopic 2")
    assert "isic_archive 2 (+1 set aside by choice)" in rows["raw data"]
    assert "empty" in rows["unrecognised"]
    assert [p for p in rep.problems if "pictures" in p] == [
        f"paths.raw: {raw / 'pictures'}: 1 image file(s) in a folder no reader recognises (expected ham10000/ with "
        "HAM10000_metadata.csv; isic2019/ with ISIC_2019_Training_GroundTruth.csv; isic2020/ with train.csv; "
        "isic2024/ with train-metadata.csv + train-image.hdf5; isic_archive/ with metadata.csv with isic_id); "
        f"move it out of {raw} if it is not an archive"]


# --- the demo download and the parameters ----------------------------------------------------------------

def test_demo_isic_archive_download(demo_raw):
    from dermsynth.demo.layouts import ISIC_ARCHIVE_ROWS, write_isic_archive

    dl = write_isic_archive(demo_raw / "isic_archive" / "demo-download", isic2019=demo_raw / "isic2019", size=(96, 72))
    header = (dl / "metadata.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == LEADING and header[3:] == sorted(header[3:])  # isic-cli's column order
    assert {"diagnosis_1", "diagnosis_4", "anatom_site_3", "image_manipulation", "pixels_x"} <= set(header)
    assert (dl / "attribution.txt").read_text().rstrip().endswith("Anonymous")
    assert sorted(p.name for p in (dl / "licenses").iterdir()) == ["CC-0.txt", "CC-BY-NC.txt", "CC-BY.txt"]
    res = ingest(demo_raw, min_size=48, workers=1)
    reasons = sorted(_reasons(res).values())
    assert reasons == sorted([R.INDETERMINATE, R.INDETERMINATE, "image type 'clinical: close-up'", R.SYNTHETIC])
    republished = res.duplicates[res.duplicates.source == "isic_archive"]
    assert len(republished) == 1 and republished.kept_source.iloc[0] == "isic2019"
    n_rows = len(ISIC_ARCHIVE_ROWS) + 1
    assert len(_kept(res)) + len(_reasons(res)) + len(republished) == n_rows  # every row accounted for once


def test_the_reported_skin_type_reaches_the_prepared_manifest_beside_ita(demo_raw, tmp_path):
    """The archive's fitzpatrick_skin_type is a prepared-manifest column next to the measured ITA band, and the
    preprocessing summary counts the bands measured per reported type."""
    from dermsynth.contracts import PREPARED_COLUMNS, PREPARED_EXTRA_COLUMNS
    from dermsynth.data.prepare import build_manifest, preprocess_all
    from dermsynth.data.preprocess import PrepConfig
    from dermsynth.demo.layouts import FITZPATRICK_OF_BAND, write_isic_archive

    write_isic_archive(demo_raw / "isic_archive" / "demo-download", isic2019=demo_raw / "isic2019", size=(96, 72))
    res = ingest(demo_raw, min_size=48, workers=1)
    df = preprocess_all(res.manifest, demo_raw, tmp_path / "images", tmp_path, PrepConfig(size=32), 1)
    manifest, summary = build_manifest(df, 4, 0.15, 0.2, seed=0)
    assert list(manifest.columns) == PREPARED_COLUMNS + PREPARED_EXTRA_COLUMNS
    reported = res.manifest.set_index("image_id").fitzpatrick_skin_type.fillna("")
    assert (manifest.set_index("image_id").fitzpatrick_skin_type == reported.loc[manifest.image_id]).all()
    archive = manifest[manifest.source == "isic_archive"]
    assert (archive.fitzpatrick_skin_type != "").any() and (manifest[manifest.source != "isic_archive"]
                                                            .fitzpatrick_skin_type == "").all()
    typed = manifest[manifest.fitzpatrick_skin_type != ""]
    table = summary["fitzpatrick_vs_skin_tone"]
    assert sum(sum(bands.values()) for bands in table.values()) == len(typed)
    for t, g in typed.groupby("fitzpatrick_skin_type"):
        assert table[t] == g.skin_tone.value_counts().to_dict()
    # the demo records the type of the skin it drew: the measured band mostly says the same
    band_of = {t: band for band, t in FITZPATRICK_OF_BAND.items()}
    agree = sum(bands.get(band_of[t], 0) for t, bands in table.items())
    print("reported vs measured:", table)
    assert agree >= 0.6 * len(typed), table


def test_params_of_the_archive_policies():
    p = validate({})["ingest"]
    assert (p["indeterminate"], p["altered"], p["image_types"]) == ("quarantine", "quarantine", ["dermoscopic"])
    assert p["source_priority"][-1] == "isic_archive"
    assert ArchivePolicy.default() == ArchivePolicy.from_params(p)
    with pytest.raises(ParamsError) as e:
        validate({"ingest": {"indeterminate": "drop", "image_types": ["dermoscopy"]}})
    assert e.value.lines == [
        "ingest.indeterminate: must be 'quarantine', 'benign' or 'malignant' (got 'drop')",
        "ingest.image_types.0: must be " + ", ".join(repr(t) for t in V.IMAGE_TYPES[:-1])
        + f" or {V.IMAGE_TYPES[-1]!r} (got 'dermoscopy')"]
