"""Raw archives are untrusted: each hostile or damaged item, planted in an otherwise valid demo archive,
is quarantined on its own with its reason and its file named, and every valid image is still kept.

Each planted item is made so that the old behaviour would keep it or crash: links point at valid
JPEGs, the sparse file starts with a valid JPEG, truncated JPEGs are checked to decode with plain
Pillow, and so on.
"""
import functools
import io
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import BmpImagePlugin, EpsImagePlugin, Image

from dermsynth.data import records as R
from dermsynth.data.images import MAX_IMAGE_BYTES, MAX_PIXELS, ImageProblem, decode, load_image, read_bytes
from dermsynth.data.ingest import format_summary, ingest
from dermsynth.data.records import IngestError

H5 = "isic2024/train-image.hdf5"
ROOT = Path(__file__).resolve().parents[2]


def _ingest(raw, **kw):
    return ingest(raw, min_size=48, workers=1, **kw)  # one process: monkeypatched decoders apply


@pytest.fixture(scope="session")
def baseline(demo_raw_session):
    """The untouched demo's ingest, to compare against."""
    return _ingest(demo_raw_session)


def _kept(res, source=None) -> int:
    m = res.manifest
    return int(len(m) if source is None else (m.source == source).sum())


def _quarantined(res, reason, source=None) -> pd.DataFrame:
    q = res.quarantine[res.quarantine.reason == reason]
    return q if source is None else q[q.source == source]


def _assert_named(rows: pd.DataFrame) -> None:
    """Each row names its file, in the file column and in the detail."""
    for r in rows.itertuples():
        assert r.file and r.file in r.detail, (r.file, r.detail)


def _kept_ids(res, source) -> list[str]:
    return sorted(res.manifest.loc[res.manifest.source == source, "image_id"])


def _file_of(res, source, image_id) -> str:
    m = res.manifest
    return m.loc[(m.source == source) & (m.image_id == image_id), "file"].item()


def _jpeg(img: np.ndarray, quality: int = 90, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def _photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    from dermsynth.demo.phantom import STYLES, render, sample_lesion

    rng = np.random.default_rng(seed)
    small = render(sample_lesion("malignant", rng), STYLES["isic2020"], max(w // 4, 8), max(h // 4, 8), rng)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _big_jpeg(progressive: bool, seed: int) -> bytes:
    return _jpeg(_photo(1024, 768, seed), progressive=progressive)


def _as_bytes(v) -> bytes:
    return v.tobytes() if isinstance(v, (np.ndarray, np.void)) else bytes(v)


def _plain_pillow(data: bytes, min_short: int = 0) -> np.ndarray:
    """What Pillow alone makes of `data`, at the reduced DCT scale ingest uses for big JPEGs."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if min_short and min(w, h) >= 2 * min_short:
        k = min_short / min(w, h)
        im.draft(None, (max(1, int(w * k)), max(1, int(h * k))))
    im.load()
    return np.asarray(im.convert("RGB"))


# --- HDF5 ----------------------------------------------------------------------------------------------
def test_hdf5_links_virtual_external_and_plugin_entries_are_quarantined_each(demo_raw, baseline, tmp_path):
    ids = _kept_ids(baseline, "isic2024")
    bad, target = ids[:5], ids[5]
    with h5py.File(demo_raw / H5, "r") as f:
        jpeg = _as_bytes(f[target][()])  # a valid image: whichever entry follows its link would be kept
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "img.jpg").write_bytes(jpeg)
    with h5py.File(outside / "other.h5", "w") as o:
        o.create_dataset("x", data=np.bytes_(jpeg))
        o.create_dataset("u8", data=np.frombuffer(jpeg, np.uint8))
    with h5py.File(demo_raw / H5, "a") as f:
        for k in bad:
            del f[k]
        f[bad[0]] = h5py.ExternalLink(str(outside / "other.h5"), "/x")
        f[bad[1]] = h5py.SoftLink("/" + target)
        layout = h5py.VirtualLayout(shape=(len(jpeg),), dtype="u1")
        layout[:] = h5py.VirtualSource(str(outside / "other.h5"), "u8", shape=(len(jpeg),))
        f.create_virtual_dataset(bad[2], layout)
        f.create_dataset(bad[3], shape=(len(jpeg),), dtype="u1", external=[(str(outside / "img.jpg"), 0, len(jpeg))])
        f.create_dataset(bad[4], data=np.frombuffer(jpeg, np.uint8), chunks=(len(jpeg),), compression=32008,
                         allow_unknown_filter=True)
    with h5py.File(demo_raw / H5, "r") as f:  # plain h5py hands over the outside bytes for each of them
        assert all(_as_bytes(f[k][()]) == jpeg for k in bad)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.UNSAFE_HDF5, "isic2024")
    assert sorted(q.image_id) == bad
    assert set(q.file) == {f"{H5}#{k}" for k in bad}
    _assert_named(q)
    details = " ".join(q.detail)
    for word in ("external link", "soft link", "virtual dataset", "external file", "filter id"):
        assert word in details
    assert _kept(res, "isic2024") == _kept(baseline, "isic2024") - 5  # the file's other entries are all used
    assert _kept(res) == _kept(baseline) - 5


def _ingest_in_bounded_memory(raw: Path):
    """Ingest, asserting it never held 256 MiB at once (a 1 GiB item read whole would)."""
    tracemalloc.start()
    try:
        res = _ingest(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, peak
    return res


def test_hdf5_entry_declaring_1_gib_is_refused_without_being_read(demo_raw, baseline):
    key = _kept_ids(baseline, "isic2024")[0]
    with h5py.File(demo_raw / H5, "a") as f:
        del f[key]
        f.create_dataset(key, shape=(2**30,), dtype="u1", chunks=(2**20,), fillvalue=0xFF)  # no chunk written
    assert (demo_raw / H5).stat().st_size < 2**20
    res = _ingest_in_bounded_memory(demo_raw)  # reading the entry would allocate the 1 GiB it declares
    q = _quarantined(res, R.TOO_LARGE, "isic2024")
    assert q.image_id.tolist() == [key] and q.file.item() == f"{H5}#{key}"
    assert "1073741824 bytes" in q.detail.item() and f"max_image_bytes={MAX_IMAGE_BYTES}" in q.detail.item()
    _assert_named(q)
    assert _kept(res) == _kept(baseline) - 1


def test_hdf5_variable_length_entry_is_still_read(demo_raw, baseline):
    key = _kept_ids(baseline, "isic2024")[0]
    with h5py.File(demo_raw / H5, "a") as f:
        data = _as_bytes(f[key][()])
        del f[key]
        f.create_dataset(key, shape=(), dtype=h5py.vlen_dtype(np.uint8))[()] = np.frombuffer(data, np.uint8)
    res = _ingest(demo_raw)
    assert _kept_ids(res, "isic2024") == _kept_ids(baseline, "isic2024")


def test_hdf5_container_in_a_linked_source_folder_is_read_and_one_linked_from_outside_is_not(demo_raw, baseline,
                                                                                             tmp_path):
    shutil.move(demo_raw / "isic2024", tmp_path / "isic2024")
    (demo_raw / "isic2024").symlink_to(tmp_path / "isic2024", target_is_directory=True)  # followed
    res = _ingest(demo_raw)
    assert _kept_ids(res, "isic2024") == _kept_ids(baseline, "isic2024")
    container = tmp_path / "isic2024/train-image.hdf5"
    shutil.move(container, tmp_path / "elsewhere.hdf5")
    container.symlink_to(tmp_path / "elsewhere.hdf5")  # a link out of the (resolved) source folder
    res = _ingest(demo_raw)
    q = _quarantined(res, R.UNSAFE_PATH, "isic2024")
    rows = pd.read_csv(tmp_path / "isic2024/train-metadata.csv")
    assert sorted(q.image_id) == sorted(rows.isic_id) and set(q.file) == {H5}  # every row, its entry or not
    _assert_named(q)
    assert _kept(res) == _kept(baseline) - _kept(baseline, "isic2024")


# --- sizes -----------------------------------------------------------------------------------------------
def test_sparse_1_gib_jpg_is_refused_by_its_size_before_it_is_read(demo_raw, baseline):
    image_id = _kept_ids(baseline, "ham10000")[0]
    file = _file_of(baseline, "ham10000", image_id)
    with open(demo_raw / file, "r+b") as fh:
        fh.truncate(2**30)  # a valid JPEG, then a hole: read whole, it would decode and be kept
    res = _ingest_in_bounded_memory(demo_raw)
    q = _quarantined(res, R.TOO_LARGE)
    assert q.image_id.tolist() == [image_id] and q.file.item() == file
    assert "1073741824 bytes > ingest.max_image_bytes=67108864" in q.detail.item()
    assert _kept(res) == _kept(baseline) - 1


def test_max_image_bytes_and_max_pixels_reach_every_image(demo_raw, baseline):
    ham = baseline.manifest[baseline.manifest.source == "ham10000"]
    sizes = {f: (demo_raw / f).stat().st_size for f in ham.file}
    limit = int(np.median(list(sizes.values())))
    res = _ingest(demo_raw, max_image_bytes=limit)
    too_big = {f for f, n in sizes.items() if n > limit}
    assert too_big and set(_quarantined(res, R.TOO_LARGE, "ham10000").file) & set(sizes) == too_big
    assert set(res.manifest.loc[res.manifest.source == "ham10000", "file"]) == set(sizes) - too_big
    # 120 x 90 HAM images (10,800 px) over the cap, 80 x 80 ISIC 2024 ones (6,400 px) under it
    res = _ingest(demo_raw, max_pixels=10_000)
    q = _quarantined(res, R.TOO_LARGE, "ham10000")
    assert set(ham.file) <= set(q.file) and q.detail.str.contains("10800 pixels > ingest.max_pixels=10000").all()
    assert _kept(res, "ham10000") == 0
    assert _kept_ids(res, "isic2024") == _kept_ids(baseline, "isic2024")


def test_pixel_bomb_headers_are_refused_before_decoding():
    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0)  # 1.6 Gpx RGB declared in a few bytes
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
           + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    jpeg = bytearray(_jpeg(_photo(64, 64)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    for data, what in ((png, "bomb.png"), (bytes(jpeg), "bomb.jpg")):
        with pytest.raises(ImageProblem) as e:
            decode(data, what)
        assert e.value.reason == R.TOO_LARGE and what in e.value.detail and f"max_pixels={MAX_PIXELS}" in e.value.detail


def test_the_new_limits_are_parameters_with_descriptions():
    from dermsynth.params import Ingest, ParamsError, validate

    fields = Ingest.model_fields
    assert fields["max_image_bytes"].default == MAX_IMAGE_BYTES == 64 * 2**20
    assert fields["max_pixels"].default == MAX_PIXELS
    assert fields["max_image_bytes"].description and fields["max_pixels"].description
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())["ingest"]
    assert (shipped["max_image_bytes"], shipped["max_pixels"]) == (MAX_IMAGE_BYTES, MAX_PIXELS)
    with pytest.raises(ParamsError, match="ingest.max_pixels"):
        validate({"ingest": {"max_pixels": 0}})


# --- decoding --------------------------------------------------------------------------------------------
def test_eps_named_jpg_is_not_an_image_and_never_reaches_ghostscript(demo_raw, baseline, monkeypatch):
    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or 1 / 0)
    ids = _kept_ids(baseline, "isic2020")
    img = np.asarray(Image.open(demo_raw / _file_of(baseline, "isic2020", ids[0])).convert("RGB"))
    eps, gif, webp = io.BytesIO(), io.BytesIO(), io.BytesIO()
    Image.fromarray(img).save(eps, "EPS")
    Image.fromarray(img).save(gif, "GIF")
    Image.fromarray(img).save(webp, "WEBP")
    assert Image.open(io.BytesIO(eps.getvalue())).format == "EPS"  # Pillow alone would hand it to Ghostscript
    files = {i: _file_of(baseline, "isic2020", i) for i in ids[:3]}
    for (i, f), data in zip(files.items(), (eps, gif, webp)):
        (demo_raw / f).write_bytes(data.getvalue())
    res = _ingest(demo_raw)
    q = _quarantined(res, R.NOT_IMAGE, "isic2020")
    assert sorted(q.image_id) == ids[:2]  # EPS and GIF (no archive ships 256-colour dermoscopy)
    _assert_named(q)
    assert ids[2] in _kept_ids(res, "isic2020")  # WEBP is on the allow-list
    assert not calls
    assert _kept(res) == _kept(baseline) - 2


@pytest.mark.parametrize("error", [ZeroDivisionError("plugin bug"), struct.error("unpack requires 4 bytes"),
                                   KeyError("tile"), RuntimeError("decoder state")])
def test_any_decoder_exception_quarantines_that_file_only(demo_raw, baseline, monkeypatch, error):
    image_id = _kept_ids(baseline, "ham10000")[3]
    jpg = demo_raw / _file_of(baseline, "ham10000", image_id)
    bmp = jpg.with_suffix(".bmp")
    Image.open(jpg).save(bmp)
    jpg.unlink()
    decode(bmp.read_bytes(), "control.bmp")  # a valid BMP: only the plugin's failure sets it aside

    def broken(self):
        raise error

    monkeypatch.setattr(BmpImagePlugin.BmpImageFile, "load", broken)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.TRUNCATED, "ham10000")
    row = q[q.image_id == image_id]
    assert row.file.item() == bmp.relative_to(demo_raw).as_posix() and type(error).__name__ in row.detail.item()
    _assert_named(row)
    assert _kept(res) == _kept(baseline) - 1


def _cut_with_eoi(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)] + b"\xff\xd9"


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("min_short", [0, 64, 200])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_jpeg_cut_short_with_an_end_marker_is_truncated_at_every_scale(progressive, min_short, fraction):
    data = _big_jpeg(progressive, 2)
    cut = _cut_with_eoi(data, fraction)
    plain = _plain_pillow(cut, min_short)  # Pillow alone decodes it, the rest filled in
    assert plain.shape[:2] == _plain_pillow(data, min_short).shape[:2]
    with pytest.raises(ImageProblem) as e:
        decode(cut, "cut.jpg", min_short)
    assert e.value.reason == R.TRUNCATED and "cut.jpg" in e.value.detail
    whole, size = decode(data, "whole.jpg", min_short)  # and the whole file is unchanged by the check
    assert size == (1024, 768)
    assert np.array_equal(whole, _plain_pillow(data, 0 if progressive else min_short))


def test_truncated_jpegs_in_an_archive_are_quarantined_at_reduced_scale(demo_raw, baseline):
    """Big photographs go through the reduced-scale decode (min_size 48: 1/8 of 768 px); cut ones are
    quarantined, whole ones of the same kind kept."""
    ids = _kept_ids(baseline, "isic2020")
    planted = {}
    for k, progressive in enumerate((False, True)):
        data = _big_jpeg(progressive, k)
        cut, whole = ids[2 * k], ids[2 * k + 1]
        planted[cut] = _cut_with_eoi(data, 0.5)
        planted[whole] = data
        _plain_pillow(planted[cut], 48)  # decodes without an error
    for image_id, data in planted.items():
        (demo_raw / _file_of(baseline, "isic2020", image_id)).write_bytes(data)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.TRUNCATED, "isic2020")
    assert sorted(q.image_id) == sorted([ids[0], ids[2]])
    _assert_named(q)
    m = res.manifest.set_index("image_id")
    assert (m.loc[[ids[1], ids[3]], ["width", "height"]].to_numpy() == [1024, 768]).all()
    assert _kept(res) == _kept(baseline) - 2


def _taller_png(data: bytes, height: int) -> bytes:
    i = data.index(b"IHDR")
    ihdr = data[i + 4 : i + 8] + struct.pack(">I", height) + data[i + 12 : i + 17]
    return data[: i + 4] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[i + 21 :]


def _taller_jpeg(data: bytes, height: int) -> bytes:
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")
    out[sof + 5 : sof + 7] = struct.pack(">H", height)
    return bytes(out)


def test_headers_declaring_more_rows_than_the_data_holds_are_truncated(demo_raw, baseline):
    png_id = "ISIC_0060008"  # the demo's 16-bit grey PNG
    png = demo_raw / _file_of(baseline, "isic2019", png_id)
    jpg_id = [i for i in _kept_ids(baseline, "isic2019") if i.startswith("ISIC_006") and i != png_id][0]
    jpg = demo_raw / _file_of(baseline, "isic2019", jpg_id)
    planted = {png: _taller_png(png.read_bytes(), 200), jpg: _taller_jpeg(jpg.read_bytes(), 200)}
    for p, data in planted.items():
        im = Image.open(io.BytesIO(data))
        im.load()  # Pillow alone makes 200 rows of 96 without a word, the rest black or grey
        assert im.size == (96, 200)
        p.write_bytes(data)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.TRUNCATED, "isic2019")
    assert sorted(q.image_id) == sorted([png_id, jpg_id])
    assert "96 of the 200 rows" in q.set_index("image_id").loc[png_id, "detail"]
    _assert_named(q)
    assert _kept(res) == _kept(baseline) - 2


# --- paths -----------------------------------------------------------------------------------------------
def test_links_out_of_a_source_folder_are_quarantined_not_fatal(demo_raw, baseline, tmp_path):
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    image_id = _kept_ids(baseline, "ham10000")[0]
    file = _file_of(baseline, "ham10000", image_id)
    shutil.move(demo_raw / file, outside / f"{image_id}.jpg")  # a valid image: followed, it would be kept
    (demo_raw / file).symlink_to(outside / f"{image_id}.jpg")
    shutil.copyfile(outside / f"{image_id}.jpg", outside / "more" / "ISIC_9999999.jpg")
    (demo_raw / "ham10000/HAM10000_images_part_3").symlink_to(outside / "more", target_is_directory=True)
    loop = demo_raw / "ham10000/HAM10000_images_part_1"
    (loop / "ISIC_8000000.jpg").symlink_to(loop / "ISIC_8000001.jpg")  # two links to each other
    (loop / "ISIC_8000001.jpg").symlink_to(loop / "ISIC_8000000.jpg")
    res = _ingest(demo_raw)
    q = _quarantined(res, R.UNSAFE_PATH, "ham10000").set_index("image_id")
    assert sorted(q.index) == sorted([image_id, "HAM10000_images_part_3", "ISIC_8000000", "ISIC_8000001"])
    assert q.loc[image_id, "file"] == file and str(outside / f"{image_id}.jpg") in q.loc[image_id, "detail"]
    assert q.loc["HAM10000_images_part_3", "file"] == "ham10000/HAM10000_images_part_3"
    _assert_named(q.reset_index())
    assert (res.quarantine.image_id == image_id).sum() == 1  # not also a missing file
    assert "ISIC_9999999" not in set(res.quarantine.image_id) | set(res.manifest.image_id)  # never listed
    assert _kept(res) == _kept(baseline) - 1


def test_a_linked_source_folder_is_followed_and_links_leaving_it_are_not(demo_raw, baseline, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    shutil.move(demo_raw / "ham10000", storage / "ham10000")
    (demo_raw / "ham10000").symlink_to(storage / "ham10000", target_is_directory=True)
    ids = _kept_ids(baseline, "ham10000")
    # inside the raw root, but outside the (resolved) source folder
    escape = _file_of(baseline, "ham10000", ids[0])
    (demo_raw / escape).unlink()
    (demo_raw / escape).symlink_to(demo_raw / _file_of(baseline, "isic2019", _kept_ids(baseline, "isic2019")[0]))
    # a link to a file of the folder itself, under the same name: that file, not a second copy
    own = _file_of(baseline, "ham10000", ids[1])
    alias = own.replace("part_1", "part_2") if "part_1" in own else own.replace("part_2", "part_1")
    (demo_raw / alias).symlink_to(demo_raw / own)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.UNSAFE_PATH, "ham10000")
    assert q.image_id.tolist() == [ids[0]] and q.file.item() == escape
    assert _quarantined(res, R.DUPLICATE_FILE).empty
    assert _kept_ids(res, "ham10000") == ids[1:]
    assert _file_of(res, "ham10000", ids[1]) == own
    m = res.manifest[res.manifest.source == "ham10000"]
    assert m.file.str.startswith("ham10000/").all()
    assert load_image(demo_raw, m.file.iloc[0]).shape == (90, 120, 3)
    assert _kept(res) == _kept(baseline) - 1


def test_reading_refuses_a_link_made_after_listing(demo_raw, tmp_path):
    (tmp_path / "secret.jpg").write_bytes(_jpeg(_photo(64, 64)))
    (demo_raw / "ham10000/HAM10000_images_part_1/ISIC_7000000.jpg").symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(ImageProblem) as e:
        read_bytes(demo_raw, "ham10000/HAM10000_images_part_1/ISIC_7000000.jpg")
    assert e.value.reason == R.UNSAFE_PATH and isinstance(e.value, ValueError)
    assert "ham10000/HAM10000_images_part_1/ISIC_7000000.jpg" in e.value.detail


@pytest.mark.parametrize("same_bytes", [False, True])
def test_a_second_file_for_an_image_id_is_quarantined(demo_raw, baseline, same_bytes):
    ids = [i for i in _kept_ids(baseline, "ham10000") if "part_1" in _file_of(baseline, "ham10000", i)]
    first = _file_of(baseline, "ham10000", ids[0])
    second = first.replace("part_1", "part_2")
    data = (demo_raw / first).read_bytes()
    if not same_bytes:  # the same picture encoded again: another image under the same id
        data = _jpeg(np.asarray(Image.open(io.BytesIO(data))), quality=70)
    (demo_raw / second).write_bytes(data)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.DUPLICATE_FILE, "ham10000")
    assert q.image_id.tolist() == [ids[0]] and q.file.item() == second
    assert first in q.detail.item() and ("identical bytes" if same_bytes else "different bytes") in q.detail.item()
    _assert_named(q)
    assert _file_of(res, "ham10000", ids[0]) == first  # the first (path order) is the image
    assert _kept(res) == _kept(baseline)


# --- labels ----------------------------------------------------------------------------------------------
def test_copies_in_two_archives_with_different_labels_are_quarantined_both(demo_raw, baseline):
    same = baseline.duplicates[baseline.duplicates.kind == "same id"]
    image_id = same.image_id.iloc[0]  # a HAM10000 image ISIC 2019 republishes
    ham_label = baseline.manifest.set_index("image_id").loc[image_id, "label"]
    gt_path = demo_raw / "isic2019/ISIC_2019_Training_GroundTruth.csv"
    gt = pd.read_csv(gt_path)
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    gt.loc[gt.image == image_id, classes] = 0.0
    gt.loc[gt.image == image_id, "NV" if ham_label == "malignant" else "MEL"] = 1.0
    gt.to_csv(gt_path, index=False)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.CONFLICTING)
    q = q[q.image_id == image_id]
    assert sorted(q.source) == ["ham10000", "isic2019"]
    _assert_named(q)
    other = "benign" if ham_label == "malignant" else "malignant"
    for r in q.itertuples():  # each names both copies, with their labels
        assert f"{_file_of(baseline, 'ham10000', image_id)} {ham_label}" in r.detail
        assert f"isic2019/ISIC_2019_Training_Input/{image_id}.jpg {other}" in r.detail
    d = res.duplicates[res.duplicates.image_id == image_id]
    assert sorted(zip(d.source, d.kind)) == [("ham10000", "conflict"), ("isic2019", "conflict")]
    assert (d.kept_id == "").all()
    assert image_id not in set(res.manifest.image_id)
    assert _kept(res) == _kept(baseline) - 1
    s = res.summary()
    assert s["label_conflicts"] == 2 and s["dropped_copies"] == baseline.summary()["dropped_copies"] - 1


def test_a_listed_duplicate_pair_with_conflicting_targets_is_quarantined_both(demo_raw, baseline):
    m = baseline.manifest[baseline.manifest.source == "isic2020"]
    a = m[m.label == "benign"].image_id.iloc[0]
    b = m[m.label == "malignant"].image_id.iloc[0]
    pd.DataFrame({"image_name_1": [a], "image_name_2": [b]}).to_csv(
        demo_raw / "isic2020/ISIC_2020_Training_Duplicates.csv", index=False)
    res = _ingest(demo_raw)
    q = _quarantined(res, R.CONFLICTING, "isic2020")
    q = q[q.image_id.isin([a, b])]
    assert sorted(q.image_id) == sorted([a, b])
    _assert_named(q)
    d = res.duplicates
    assert sorted(d[d.kind == "conflict"].image_id) == sorted([a, b])
    assert _kept(res, "isic2020") == _kept(baseline, "isic2020") - 2


# --- metadata ----------------------------------------------------------------------------------------------
def test_all_empty_metadata_rows_are_counted_not_quarantined(demo_raw, baseline):
    ham = demo_raw / "ham10000/HAM10000_metadata.csv"
    n_cols = len(pd.read_csv(ham, nrows=1).columns)
    with open(ham, "a") as fh:
        fh.write(("," * (n_cols - 1) + "\n") * 200_000)  # a spreadsheet export's trailing rows
        fh.write((" ,\t, " + "," * (n_cols - 3) + "\n") * 10)  # blank cells
        fh.write(",,\n" * 5)  # short rows
        fh.write(",ISIC_9000000,nv" + "," * (n_cols - 3) + "\n")  # not empty: an item (a missing file)
    isic20 = demo_raw / "isic2020/train.csv"
    with open(isic20, "a") as fh:
        fh.write(("," * (len(pd.read_csv(isic20, nrows=1).columns) - 1) + "\n") * 1000)
    res = _ingest(demo_raw)
    assert res.summary()["empty_rows"] == {"ham10000": 200_015, "isic2019": 0, "isic2020": 1000, "isic2024": 0}
    assert len(res.quarantine) == len(baseline.quarantine) + 1
    assert _kept(res) == _kept(baseline)
    assert "all-empty metadata rows skipped: ham10000 200015, isic2020 1000" in format_summary(res.summary())


def test_a_metadata_file_linked_from_outside_is_a_clear_error(demo_raw, tmp_path):
    meta = demo_raw / "ham10000/HAM10000_metadata.csv"
    shutil.move(meta, tmp_path / "HAM10000_metadata.csv")
    meta.symlink_to(tmp_path / "HAM10000_metadata.csv")
    with pytest.raises(IngestError, match=r"HAM10000_metadata\.csv: links to .*outside the source folder"):
        _ingest(demo_raw)


def test_check_counts_the_raw_archives_through_links_and_empty_rows(demo_raw, tmp_path):
    from dermsynth.check import Report, _raw

    params = {"paths": {"raw": str(demo_raw)}}
    rep = Report()
    before = _raw(params, rep)
    assert before > 0 and not rep.problems
    shutil.move(demo_raw / "isic2020", tmp_path / "isic2020")
    (demo_raw / "isic2020").symlink_to(tmp_path / "isic2020", target_is_directory=True)
    with open(tmp_path / "isic2020/train.csv", "a") as fh:
        fh.write(",,,,,,,\n" * 1000)
    rep = Report()
    assert _raw(params, rep) == before and not rep.problems
    (demo_raw / "ham10000/HAM10000_metadata.csv").rename(tmp_path / "HAM10000_metadata.csv")
    (demo_raw / "ham10000/HAM10000_metadata.csv").symlink_to(tmp_path / "HAM10000_metadata.csv")
    rep = Report()
    _raw(params, rep)
    assert len(rep.problems) == 1 and "HAM10000_metadata.csv: links to" in rep.problems[0]
