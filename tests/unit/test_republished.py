"""One manifest row per image across archives: same ISIC id, ISIC 2020's duplicates list, identical bytes."""
import shutil

import pandas as pd
import pytest

from dermsynth.data.ingest import ingest
from dermsynth.contracts import DUPLICATES_COLUMNS
from dermsynth.data.republished import collapse


def _accounted(res, raw, source, rows):
    """Every metadata row of `source` is kept, quarantined or listed as a dropped copy, exactly once."""
    n = sum((t.source == source).sum() for t in (res.manifest, res.quarantine, res.duplicates))
    assert n == rows, (source, n, rows)


def test_isic2019_republishing_ham10000_ids_gives_one_row_each(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1)
    m, d = res.manifest, res.duplicates
    assert list(d.columns) == DUPLICATES_COLUMNS
    assert not m.image_id.duplicated().any()  # one row per image id across archives
    same = d[d.kind == "same id"]
    assert len(same) == 6 and set(same.source) == {"isic2019"} and set(same.kept_source) == {"ham10000"}
    assert (same.image_id == same.kept_id).all()
    ham = m.set_index("image_id").loc[same.kept_id]
    assert (ham.source == "ham10000").all() and ham.also_in.eq("isic2019/" + ham.index).all()
    assert res.summary()["dropped_copies"] == 6 and res.summary()["dropped_per_source"] == {"isic2019": {"same id": 6}}
    gt = pd.read_csv(demo_raw / "isic2019/ISIC_2019_Training_GroundTruth.csv")
    _accounted(res, demo_raw, "isic2019", len(gt))


def test_source_priority_decides_which_copy_is_kept(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1, source_priority=["isic2019", "ham10000", "isic2020", "isic2024"])
    d = res.duplicates
    assert set(d.source) == {"ham10000"} and set(d.kept_source) == {"isic2019"} and len(d) == 6
    with pytest.raises(ValueError, match="source_priority"):
        ingest(demo_raw, min_size=48, workers=1, source_priority=["ham10000", "isic2019"])


def test_isic2020_duplicates_list_and_identical_bytes(demo_raw):
    folder = demo_raw / "isic2020"
    meta = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    first = ingest(demo_raw, min_size=48, workers=1).manifest
    ok = first[first.source == "isic2020"]
    a, b = ok[ok.label == ok.label.iloc[0]].image_id.tolist()[:2]  # a listed pair agrees on the label
    pd.DataFrame({"image_name_1": [a], "image_name_2": [b]}).to_csv(folder / "ISIC_2020_Training_Duplicates.csv",
                                                                  index=False)
    # a HAM10000 image published again, byte for byte, under a new ISIC 2020 id
    ham_row = first[first.source == "ham10000"].iloc[0]
    shutil.copyfile(demo_raw / ham_row.file, folder / "train" / "ISIC_7777777.jpg")
    extra = meta.iloc[[0]].assign(image_name="ISIC_7777777", patient_id="IP_7777777",
                                  target="1" if ham_row.label == "malignant" else "0",
                                  benign_malignant=ham_row.label)
    pd.concat([meta, extra]).to_csv(folder / "train.csv", index=False)
    res = ingest(demo_raw, min_size=48, workers=1)
    d = res.duplicates.set_index("image_id")
    assert d.loc[b, "kind"] == "listed duplicate" and d.loc[b, "kept_id"] == a
    assert d.loc["ISIC_7777777", "kind"] == "identical bytes" and d.loc["ISIC_7777777", "kept_id"] == ham_row.image_id
    kept = res.manifest.set_index("image_id")
    assert "isic2020/ISIC_7777777" in kept.loc[ham_row.image_id, "also_in"]
    assert kept.loc[ham_row.image_id, "patient_id"] == "IP_7777777"  # grouping info of the copy is kept
    assert b not in kept.index and "ISIC_7777777" not in kept.index
    _accounted(res, demo_raw, "isic2020", len(meta) + 1)


def test_collapse_on_a_table():
    m = pd.DataFrame({"image_id": ["A", "A", "B", "C", "D"], "source": ["isic2019", "ham10000", "ham10000", "isic2020", "isic2020"],
                      "lesion_id": ["", "L1", "L2", "", ""], "patient_id": ["P1", "", "", "", "P9"],
                      "sha256": ["h1", "h2", "h3", "h4", "h3"]})
    out, d = collapse(m, listed_pairs=[("isic2020", "C", "D")])
    # A twice by id; D is B's bytes and listed with C: B, C and D are one image, kept as ham10000's B
    assert sorted(out.image_id) == ["A", "B"]
    a = out.set_index("image_id").loc["A"]
    assert a.source == "ham10000" and a.lesion_id == "L1" and a.patient_id == "P1" and a.also_in == "isic2019/A"
    assert set(zip(d.image_id, d.kind)) == {("A", "same id"), ("C", "listed duplicate"), ("D", "listed duplicate")}
