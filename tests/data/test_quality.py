"""Great Expectations gates on good data, and on data broken in each expected way."""
import json
import shutil

import cv2
import pandas as pd
import pytest

from dermsynth.data.ingest import SOURCES, ingest
from dermsynth.quality.gate import QualityGateError, run_gate, validate
from dermsynth.quality.suites import QualityConfig, prepared_suite, raw_suite

CFG = QualityConfig(min_raw_size=48, min_minority_fraction=0.1, min_split_rows=3)


@pytest.fixture(scope="module")
def raw_manifest(demo_raw_session):
    return ingest(demo_raw_session, min_size=48, workers=1).manifest


@pytest.fixture()
def prepared(prepared_session, tmp_path):
    root, manifest = prepared_session
    shutil.copytree(root / "data", tmp_path / "data")
    return tmp_path, manifest.copy()


def _failed(report):
    return {(c["table"], c["expectation"]) for c in report["checks"] if not c["success"]}


def test_raw_suite_passes_on_good_data(raw_manifest, tmp_path):
    report = run_gate("raw", raw_suite(raw_manifest, list(SOURCES), CFG), tmp_path)
    assert report["success"]
    assert json.loads((tmp_path / "raw.json").read_text())["success"]
    assert "PASSED" in (tmp_path / "raw.md").read_text()


@pytest.mark.parametrize("breakage, expectation", [
    (lambda m: m.assign(label=m.label.where(m.index != 0, "melanoma")), "expect_column_values_to_be_in_set"),
    (lambda m: m.assign(width=m.width.where(m.index != 1, 20)), "expect_column_values_to_be_between"),
    (lambda m: m.assign(file=m.file.where(m.index != 2, None)), "expect_column_values_to_not_be_null"),
    (lambda m: m.assign(image_id=m.image_id.where(m.index != 3, m.image_id[4])), "expect_compound_columns_to_be_unique"),
    (lambda m: m.iloc[0:0], "expect_table_row_count_to_be_between"),
])
def test_raw_suite_catches_each_breakage(raw_manifest, breakage, expectation):
    m = breakage(raw_manifest.copy())
    report = validate("raw", raw_suite(m, list(SOURCES), CFG))
    assert not report["success"]
    assert ("manifest", expectation) in _failed(report)


def test_prepared_suite_passes_on_good_data(prepared):
    root, m = prepared
    assert validate("prepared", prepared_suite(m, root, 32, CFG))["success"]


def test_prepared_wrong_resolution_and_missing_file(prepared):
    root, m = prepared
    img = cv2.imread(str(root / m.path[0]))
    cv2.imwrite(str(root / m.path[0]), cv2.resize(img, (40, 32)))
    (root / m.path[1]).unlink()
    report = validate("prepared", prepared_suite(m, root, 32, CFG))
    failed = _failed(report)
    assert ("image_files", "expect_column_values_to_be_between") in failed
    assert ("image_files", "expect_column_values_to_be_in_set") in failed


def test_prepared_leak_is_caught(prepared):
    root, m = prepared
    lesion = m.loc[m.lesion_id.astype(str) != "", "lesion_id"].iloc[0]
    other = {"train": "test", "val": "train", "test": "train"}
    m.loc[m.index[m.lesion_id == lesion][0], "split"] = other[m.loc[m.lesion_id == lesion, "split"].iloc[0]]
    # give the lesion a second row in the other split if it had only one
    if (m.lesion_id == lesion).sum() == 1:
        extra = m[m.lesion_id == lesion].assign(split="val", image_id="copy", path="x")
        m = pd.concat([m, extra], ignore_index=True)
    assert ("leakage", "expect_column_values_to_be_between") in _failed(validate("prepared", prepared_suite(m, root, 32, CFG)))


def test_prepared_imbalance_and_missing_split(prepared):
    root, m = prepared
    test_mal = m.index[(m.split == "test") & (m.label == "malignant")]
    m = m.drop(test_mal)
    assert ("balance", "expect_column_values_to_be_between") in _failed(validate("prepared", prepared_suite(m, root, 32, CFG)))
    m2 = prepared[1][prepared[1].split != "val"]
    assert ("manifest", "expect_column_distinct_values_to_equal_set") in _failed(
        validate("prepared", prepared_suite(m2, root, 32, CFG)))


def test_failed_gate_raises_naming_the_expectation(prepared, tmp_path):
    root, m = prepared
    with pytest.raises(QualityGateError) as e:
        run_gate("prepared", prepared_suite(m, root, 48, CFG), tmp_path / "q")
    assert "expect_column_values_to_be_between" in str(e.value) and "resolution" in str(e.value)
    assert "FAIL" in (tmp_path / "q/prepared.md").read_text()


def test_a_small_test_set_is_named_in_the_gate_message(prepared, tmp_path):
    # a pilot on a few hundred images: one per-source test set too small, and the message says which
    root, m = prepared
    isic_test = m.index[(m.split == "test") & (m.source != "ham10000")]
    m = m.drop(isic_test[2:])  # two ISIC test rows left
    with pytest.raises(QualityGateError) as e:
        run_gate("prepared", prepared_suite(m, root, 64, CFG), tmp_path / "q")
    lines = str(e.value).splitlines()
    assert any("test:isic: n=2" in ln and "below 3" in ln and "quality.min_split_rows" in ln for ln in lines), lines
    assert not any("test:ham10000: n=" in ln for ln in lines)  # the large enough one is not named
