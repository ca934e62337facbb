"""Ingest of each source layout and of every kind of bad input."""
import io

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermsynth.data import records as R
from dermsynth.data.images import ImageProblem, decode, load_image
from dermsynth.data.ingest import check_usable, detect_sources, ingest
from dermsynth.data.records import IngestError, is_safe_id, safe_join


def _reasons(res, source):
    q = res.quarantine[res.quarantine.source == source]
    return dict(zip(q.image_id, q.reason))


def test_demo_detects_all_four_sources(demo_raw):
    assert detect_sources(demo_raw) == ["ham10000", "isic2019", "isic2020", "isic2024"]


def test_every_raw_item_is_accounted_for(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1)
    # Each metadata row and each orphan image is either kept or quarantined, exactly once.
    ham = pd.read_csv(demo_raw / "ham10000/HAM10000_metadata.csv")
    n_ham = (res.manifest.source == "ham10000").sum() + (res.quarantine.source == "ham10000").sum()
    assert n_ham == len(ham) + 1  # + the orphan image
    i24 = pd.read_csv(demo_raw / "isic2024/train-metadata.csv")
    assert (res.manifest.source == "isic2024").sum() + (res.quarantine.source == "isic2024").sum() == len(i24)


def test_each_defect_gets_its_reason(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=2)
    ham, i19, i20, i24 = (_reasons(res, s) for s in ("ham10000", "isic2019", "isic2020", "isic2024"))
    assert sorted(ham.values()) == sorted([R.TRUNCATED, R.DUPLICATE_ROW, R.MISSING_FILE, R.ORPHAN])
    assert sorted(i19.values()) == sorted([R.CONFLICTING, R.UNKNOWN_LABEL, R.NOT_IMAGE])
    assert sorted(i20.values()) == sorted([R.TOO_SMALL, R.CONFLICTING, R.UNSAFE_ID])
    assert sorted(i24.values()) == sorted([R.CORRUPT_HDF5, R.MISSING_FILE])
    assert "../../../etc/passwd" in i20
    # the duplicated HAM row keeps its first copy
    dup = [k for k, v in ham.items() if v == R.DUPLICATE_ROW][0]
    assert dup in set(res.manifest.image_id)


def test_unusual_but_valid_images_are_converted_not_rejected(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1)
    m = res.manifest.set_index(["source", "image_id"])
    # EXIF-rotated HAM image (stored portrait with orientation 6) comes out landscape.
    exif_id = "ISIC_0024309"
    assert (m.loc[("ham10000", exif_id), "width"], m.loc[("ham10000", exif_id), "height"]) == (120, 90)
    # 16-bit grey PNG (isic2019 #8), CMYK (isic2020 #5) and grey (isic2020 #6) JPEGs are kept as RGB.
    for src, iid in [("isic2019", "ISIC_0060008"), ("isic2020", "ISIC_0080005"), ("isic2020", "ISIC_0080006")]:
        img = load_image(demo_raw, m.loc[(src, iid), "file"])
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert 30 < img.mean() < 250  # 16-bit scaled, not clipped to white or black


def test_labels_follow_the_benign_malignant_mapping(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1)
    ham = res.manifest[res.manifest.source == "ham10000"]
    mal = ham.diagnosis.isin(["mel", "bcc", "akiec"])
    assert (ham.label[mal] == "malignant").all() and (ham.label[~mal] == "benign").all()
    i19 = res.manifest[res.manifest.source == "isic2019"]
    assert set(i19.label[i19.diagnosis.isin(["mel", "bcc", "ak", "scc"])]) <= {"malignant"}


def test_unreadable_hdf5_quarantines_every_row(demo_raw):
    (demo_raw / "isic2024/train-image.hdf5").write_bytes(b"not an hdf5 file at all")
    res = ingest(demo_raw, min_size=48, workers=1)
    assert (res.manifest.source == "isic2024").sum() == 0
    n_rows = len(pd.read_csv(demo_raw / "isic2024/train-metadata.csv"))
    assert (res.quarantine.source == "isic2024").sum() == n_rows


def test_missing_column_is_a_clear_error_naming_the_file(demo_raw):
    p = demo_raw / "ham10000/HAM10000_metadata.csv"
    pd.read_csv(p).drop(columns=["dx"]).to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"HAM10000_metadata\.csv.*missing column.*dx"):
        ingest(demo_raw, min_size=48, workers=1)


def test_stage_fails_only_when_nothing_usable_or_too_much_quarantined(demo_raw):
    res = ingest(demo_raw, min_size=48, workers=1)
    check_usable(res, max_quarantine_fraction=0.5)
    with pytest.raises(IngestError, match="max_quarantine_fraction"):
        check_usable(res, max_quarantine_fraction=0.01)
    with pytest.raises(IngestError, match="no usable image"):
        check_usable(ingest(demo_raw, min_size=10_000, workers=1), max_quarantine_fraction=1.0)


def test_no_raw_folder_or_no_source_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        ingest(tmp_path / "nope")
    with pytest.raises(IngestError, match="no known source"):
        ingest(tmp_path)


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "/etc/passwd", "a\\b", "", "x" * 300])
def test_unsafe_ids(bad):
    assert not is_safe_id(bad)


def test_safe_join_refuses_escape(tmp_path):
    assert safe_join(tmp_path, "a/b.jpg") == (tmp_path / "a/b.jpg").resolve()
    with pytest.raises(ValueError):
        safe_join(tmp_path, "../../etc/passwd")
    with pytest.raises(ValueError):
        load_image(tmp_path, "../outside.jpg")


def _jpeg(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def _big_photo(w=2048, h=1536, seed=0) -> np.ndarray:
    from dermsynth.demo.phantom import STYLES, render, sample_lesion

    rng = np.random.default_rng(seed)
    small = render(sample_lesion("malignant", rng), STYLES["isic2020"], w // 4, h // 4, rng)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)


def test_large_jpegs_decode_at_reduced_scale_within_psnr():
    from dermsynth.data.preprocess import PrepConfig, preprocess_image

    data = _jpeg(_big_photo())
    cfg = PrepConfig(size=128, work_scale=2)  # working side 256: DCT scaling by 4 (512 x 384)
    full, size_full = decode(data, "big.jpg")
    small, size_small = decode(data, "big.jpg", cfg.working_short)
    assert size_full == size_small == (2048, 1536)  # the manifest records the true size either way
    assert small.shape == (384, 512, 3) and full.shape == (1536, 2048, 3)
    a, b = preprocess_image(full, cfg), preprocess_image(small, cfg)
    psnr = 10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2))
    assert psnr >= 35, f"reduced decoding changed the output: {psnr:.1f} dB"


def test_reduced_decoding_still_catches_truncation_and_reports_the_upright_size():
    data = _jpeg(_big_photo(1024, 768))
    with pytest.raises(ImageProblem) as e:
        decode(data[: len(data) // 2], "cut.jpg", 64)
    assert e.value.reason == R.TRUNCATED
    rotated = _jpeg(_big_photo(1024, 768), exif=_orientation(6))
    img, size = decode(rotated, "rot.jpg", 64)
    assert size == (768, 1024) and img.shape[0] > img.shape[1]  # EXIF 6 turns it upright


def _orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_a_demo_too_small_for_its_planted_defects_says_so(tmp_path):
    """The planted HAM10000 defects reuse its 1st, 2nd, 6th and 8th photographs: fewer is a clear error."""
    from dermsynth.demo.layouts import write_demo
    from dermsynth.demo.photos import scale_specs
    from dermsynth.errors import UserValueError

    with pytest.raises(UserValueError, match="at least 8 photographs"):
        write_demo(tmp_path / "raw", specs=scale_specs(0.0002), defects=True, external=False)
