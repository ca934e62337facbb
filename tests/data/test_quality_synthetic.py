"""The synthetic-set gate catches black, blank, missing and unbalanced images."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermsynth.contracts import METADATA_COLUMNS, SYNTHETIC_IMAGE_COLUMNS
from dermsynth.quality.gate import QualityGateError, run_gate, validate
from dermsynth.quality.suites import synthetic_images, synthetic_suite


def _set(root, n_per_class=4, size=16):
    rng = np.random.default_rng(0)
    rows = []
    for label in ("benign", "malignant"):
        for i in range(n_per_class):
            path = f"syn/{label}_{i}.png"
            (root / "syn").mkdir(exist_ok=True)
            Image.fromarray(rng.integers(40, 220, (size, size, 3), dtype=np.uint8)).save(root / path)
            rows.append({"image_id": f"{label}_{i}", "label": label, "prompt": "p", "negative_prompt": "n",
                         "sampler": "euler", "steps": 20, "cfg": 7.0, "seed": len(rows), "lora": "models/lora/x",
                         "base_model": "models/base", "path": path, "device": "cpu", "dtype": "float32",
                         "source": "models/lora", "source_file": "", "sha256": f"{len(rows):064x}"})
    return pd.DataFrame(rows, columns=METADATA_COLUMNS)


def _failed(meta, root, n=4, size=16):
    r = validate("synthetic", synthetic_suite(meta, synthetic_images(meta, root, workers=1), n, ["benign", "malignant"], size))
    return {(c["table"], c["expectation"], str(c["kwargs"].get("column"))) for c in r["checks"] if not c["success"]}


def test_good_set_passes(tmp_path):
    assert _failed(_set(tmp_path), tmp_path) == set()


def test_per_image_table_keeps_the_metadata_order_over_two_processes(tmp_path):
    meta = _set(tmp_path)
    (tmp_path / meta.path[5]).write_bytes(b"oops")
    one, two = synthetic_images(meta, tmp_path, workers=1), synthetic_images(meta, tmp_path, workers=2)
    assert list(one.columns) == SYNTHETIC_IMAGE_COLUMNS and one.equals(two)
    assert list(one.path) == list(meta.path) and list(one.label) == list(meta.label)
    assert one.decodes.tolist() == [True] * 5 + [False] + [True] * 2 and one.pixel_std[5] == 0.0


def test_black_image_is_caught(tmp_path):
    meta = _set(tmp_path)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / meta.path[2])
    failed = _failed(meta, tmp_path)
    assert ("images", "expect_column_values_to_be_between", "pixel_mean") in failed
    assert ("images", "expect_column_values_to_be_between", "pixel_std") in failed


def test_blank_grey_image_is_caught(tmp_path):
    meta = _set(tmp_path)
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / meta.path[0])
    assert _failed(meta, tmp_path) == {("images", "expect_column_values_to_be_between", "pixel_std")}


def test_unbalanced_and_short_set_is_caught(tmp_path):
    meta = _set(tmp_path)
    meta = meta.drop(index=[6, 7])  # 4 benign, 2 malignant
    failed = _failed(meta, tmp_path)
    assert ("counts", "expect_column_values_to_be_between", "n") in failed
    assert ("counts", "expect_column_values_to_be_between", "fraction") in failed


def test_unreadable_and_wrong_size(tmp_path):
    meta = _set(tmp_path)
    (tmp_path / meta.path[1]).write_bytes(b"oops")
    Image.fromarray(np.full((20, 16, 3), 100, np.uint8)).save(tmp_path / meta.path[3])
    failed = _failed(meta, tmp_path)
    assert ("images", "expect_column_values_to_be_in_set", "decodes") in failed
    assert ("images", "expect_column_values_to_be_between", "height") in failed


def test_gate_raises_with_the_reason(tmp_path):
    meta = _set(tmp_path)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / meta.path[2])
    with pytest.raises(QualityGateError, match="no black images"):
        run_gate("synthetic", synthetic_suite(meta, synthetic_images(meta, tmp_path), 4, ["benign", "malignant"], 16),
                 tmp_path / "q")
