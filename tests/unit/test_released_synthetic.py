"""A released synthetic set (a folder per class, or a CSV) imported as the synthetic set: the same files and
metadata columns as generated ones, every unusable file quarantined with its reason, nothing read from
outside the set, the synthetic gate and the classifier side's readers satisfied."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dermsynth.contracts import METADATA_COLUMNS, METADATA_UNKNOWN_WHEN_IMPORTED, QUARANTINE_COLUMNS
from dermsynth.diffusion.released import ImportConfig, import_record, import_released
from dermsynth.errors import UserError
from dermsynth.params import ParamsError, validate
from dermsynth.paths import mark_output_dir
from dermsynth.quality.gate import validate as gx_validate
from dermsynth.quality.suites import synthetic_images, synthetic_suite

SIZE = 16
CLASSES = ("benign", "malignant")


def _image(path, seed, w=40, h=40, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(40, 220, (h, w, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _release(root, per_class=3, name="data/external/derm-t2im"):
    """A Derm-T2IM-like release: benign/ and malignant/ with PNGs, a JPEG, a non-square image, a .DS_Store."""
    base = root / name
    for ci, label in enumerate(CLASSES):
        for i in range(per_class):
            _image(base / label / f"{label}_{i:03d}.png", 10 * ci + i)
        _image(base / label / "photo.jpg", 100 + ci, fmt="JPEG")
        _image(base / label / "wide.png", 200 + ci, w=48, h=32)
        (base / label / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return base


def _import(root, source="data/external/derm-t2im", n=0, seed=0, out="data/synthetic"):
    cfg = ImportConfig(source=source, classes=CLASSES, n_per_class=n, size=SIZE, seed=seed, workers=1)
    return import_released(cfg, root / out, repo_root=root, quarantine_file=root / "reports/generate/quarantine.csv")


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # what find_root looks for
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


def test_class_folders_become_the_generated_layout(repo):
    base = _release(repo)
    meta, quarantine, summary = _import(repo)
    assert list(meta.columns) == METADATA_COLUMNS
    written = pd.read_csv(repo / "data/synthetic/metadata.csv", keep_default_na=False)
    assert list(written.columns) == METADATA_COLUMNS and len(written) == 10 and quarantine.empty
    assert written.groupby("label").size().to_dict() == {"benign": 5, "malignant": 5}
    # the generator's names, counted per class in the order of the release's file names
    assert list(written.image_id[written.label == "benign"]) == [f"syn_benign_{i:05d}" for i in range(5)]
    assert (written.path == "data/synthetic/images/" + written.label + "/" + written.image_id + ".png").all()
    assert list(written.source_file[written.label == "benign"]) == [
        "benign/benign_000.png", "benign/benign_001.png", "benign/benign_002.png", "benign/photo.jpg", "benign/wide.png"]
    for r in written.itertuples():
        with Image.open(repo / r.path) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (SIZE, SIZE)
        assert r.sha256 == hashlib.sha256((base / r.source_file).read_bytes()).hexdigest()  # of the original file
    assert (written.source == "data/external/derm-t2im").all()
    assert (written[METADATA_UNKNOWN_WHEN_IMPORTED] == "").all().all()  # no prompt, seed or sampler: none given
    assert summary["mode"] == "import" and summary["format"] == "folders" and summary["cropped_to_square"] == 2
    assert summary["skipped"] == {"hidden files in benign/": 1, "hidden files in malignant/": 1}
    assert import_record(repo / "data/synthetic")["usable"] == {"benign": 5, "malignant": 5}
    assert not (repo / "data/synthetic/.importing").exists()
    assert list(pd.read_csv(repo / "reports/generate/quarantine.csv").columns) == QUARANTINE_COLUMNS


def test_the_wide_image_is_its_centred_square(repo):
    base = repo / "data/external/one"
    for label in CLASSES:
        a = np.zeros((32, 48, 3), np.uint8)
        a[:, 8:40] = 200  # the centred 32 px square is all 200; the side bands black
        base.joinpath(label).mkdir(parents=True)
        Image.fromarray(a).save(base / label / "lesion#12.png")  # a '#' is a file name, not an hdf5 entry
    meta, quarantine, _ = _import(repo, "data/external/one")
    assert quarantine.empty and list(meta.source_file) == ["benign/lesion#12.png", "malignant/lesion#12.png"]
    assert np.asarray(Image.open(repo / meta.path[0])).min() == 200


def test_csv_import_takes_prompt_and_seed(repo):
    ext = repo / "data/external/csvset"
    for i in range(3):
        _image(ext / "images" / f"b{i}.png", i)
        _image(ext / "images" / f"m{i}.png", 10 + i)
    rows = ([f"images/b{i}.png,benign,a benign lesion,{100 + i},x" for i in range(3)]
            + [f"./images/m{i}.png,Malignant,a malignant lesion,{200 + i},y" for i in range(3)])
    (ext / "labels.csv").write_text("path,label,prompt,seed,annotator\n" + "\n".join(rows) + "\n")
    meta, quarantine, summary = _import(repo, "data/external/csvset/labels.csv")
    assert quarantine.empty and summary["format"] == "csv" and len(meta) == 6
    written = pd.read_csv(repo / "data/synthetic/metadata.csv", keep_default_na=False)
    assert list(written.columns) == METADATA_COLUMNS
    mal = written[written.label == "malignant"]
    assert list(mal.prompt) == ["a malignant lesion"] * 3 and list(mal.seed) == [200, 201, 202]
    assert list(mal.source_file) == ["images/m0.png", "images/m1.png", "images/m2.png"]
    assert (written.sampler == "").all() and (written.source == "data/external/csvset/labels.csv").all()
    assert summary["skipped"] == {"columns ignored: annotator": 6}


def test_a_bad_number_in_the_csv_is_one_line(repo):
    ext = repo / "data/external/csvset"
    _image(ext / "b.png", 1)
    (ext / "labels.csv").write_text("path,label,seed\nb.png,benign,twelve\n")
    with pytest.raises(UserError) as e:
        _import(repo, "data/external/csvset/labels.csv")
    assert str(e.value).splitlines() == [
        "generate.source: data/external/csvset/labels.csv: not numbers where numbers belong (row 2 seed='twelve'); "
        "fix or drop the column"]


def test_n_per_class_draws_the_same_images_for_the_same_data_seed(repo):
    _release(repo, per_class=8)  # 10 per class
    picks = {}
    for run, seed in (("a", 1), ("b", 1), ("c", 2)):
        meta, _, summary = _import(repo, n=4, seed=seed, out=f"syn_{run}")
        assert meta.groupby("label").size().to_dict() == {"benign": 4, "malignant": 4}
        assert summary["usable"] is None and "seeded by data_seed" in summary["selection"]
        picks[run] = list(meta.source_file)
        assert import_record(repo / f"syn_{run}")["n_per_class"] == 4
    assert picks["a"] == picks["b"] and picks["a"] != picks["c"]
    with pytest.raises(UserError, match=r"generate.n_per_class=11: data/external/derm-t2im has only 10 usable benign "
                                        r"images; ask for fewer, or 0 for all of them"):
        _import(repo, n=11)


def test_undecodable_files_are_quarantined_with_their_reason(repo):
    base = _release(repo)
    data = (base / "benign/benign_000.png").read_bytes()
    (base / "benign/benign_000.png").write_bytes(data[: len(data) // 2])  # a download cut short
    (base / "malignant/readme.txt").write_text("Derm-T2IM synthetic images, CC BY 4.0\n")
    (base / "malignant/empty.png").write_bytes(b"")
    meta, quarantine, summary = _import(repo)
    q = pd.read_csv(repo / "reports/generate/quarantine.csv", keep_default_na=False)
    assert list(q.columns) == QUARANTINE_COLUMNS and len(q) == 3 == summary["quarantined"]
    assert dict(zip(q.file, q.reason)) == {"benign/benign_000.png": "truncated or corrupt",
                                           "malignant/readme.txt": "not an image", "malignant/empty.png": "not an image"}
    assert (q.source == "data/external/derm-t2im").all() and (q.detail != "").all()
    assert "benign/benign_000.png" not in set(meta.source_file) and len(meta) == 9
    assert import_record(repo / "data/synthetic")["usable"] == {"benign": 4, "malignant": 5}
    # asked for more than the usable ones: an error naming the quarantine, written first
    (repo / "reports/generate/quarantine.csv").unlink()
    with pytest.raises(UserError, match=r"only 4 usable benign images \(3 quarantined: .*quarantine.csv\)"):
        _import(repo, n=5)
    assert len(pd.read_csv(repo / "reports/generate/quarantine.csv")) >= 1


def test_a_missing_or_empty_class_folder_is_one_line(repo):
    base = repo / "data/external/half"
    _image(base / "benign/a.png", 0)
    with pytest.raises(UserError) as e:
        _import(repo, "data/external/half")
    assert str(e.value).splitlines() == [
        "generate.source: 'data/external/half' has no malignant/ folder: a released set holds one subfolder per "
        "class of generate.classes (benign/, malignant/)"]
    (base / "malignant").mkdir()
    (base / "malignant/.DS_Store").write_bytes(b"x")
    with pytest.raises(ParamsError) as e:
        validate({"generate": {"source": "data/external/half"}}, root=repo)
    assert e.value.lines == ["generate.source: 'data/external/half': data/external/half/malignant/ holds no files"]
    with pytest.raises(ParamsError) as e:
        validate({"generate": {"source": "data/external/nothing"}}, root=repo)
    assert e.value.lines == ["generate.source: 'data/external/nothing' does not exist (a released set is a folder "
                             "with one subfolder per class, benign/, malignant/ or a CSV file of path,label rows)"]
    assert not (repo / "data/synthetic").exists()  # refused before anything was replaced


@pytest.mark.parametrize("source,problem", [
    ("/srv/derm-t2im", "is an absolute path; name a path inside the repository"),
    ("../derm-t2im", "lies outside the repository"),
    ("data/synthetic/old", "lies inside paths.synthetic (data/synthetic), which the pipeline deletes and rebuilds"),
    ("data", "holds paths.interim (data/interim), an output of the pipeline"),
    ("models/lora/benign", "lies inside models/ (the pipeline's models)"),
])
def test_the_source_must_be_the_repositorys_own_folder(repo, source, problem):
    with pytest.raises(ParamsError) as e:
        validate({"generate": {"source": source}}, root=repo)
    assert len(e.value.lines) == 1 and e.value.lines[0].startswith(f"generate.source: {source!r} {problem}")


def test_a_linked_release_is_accepted_and_paths_leading_out_are_never_read(repo, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("storage")
    secret = _image(elsewhere / "secret.png", 99)  # a valid image: only the refusal keeps it out
    real = _release(elsewhere, name="derm-t2im")
    (repo / "data/external").mkdir(parents=True)
    (repo / "data/external/derm-t2im").symlink_to(real)  # the whole set on another disk: fine
    (real / "benign/leak.png").symlink_to(secret)  # a link inside the set that leads out of it: refused
    (real / "malignant/sub").symlink_to(elsewhere)  # a folder link leading out: refused, never walked
    assert validate({"generate": {"source": "data/external/derm-t2im"}}, root=repo)["generate"]["source"]
    meta, quarantine, _ = _import(repo)
    assert len(meta) == 10 and hashlib.sha256(secret.read_bytes()).hexdigest() not in set(meta.sha256)
    assert dict(zip(quarantine.file, quarantine.reason)) == {"benign/leak.png": "unsafe path", "malignant/sub": "unsafe path"}
    # a CSV naming files outside its folder
    ext = repo / "data/external/csvset"
    _image(ext / "ok.png", 1)
    _image(ext / "ok2.png", 2)
    (ext / "labels.csv").write_text(f"path,label\nok.png,benign\n../derm-t2im/benign/benign_000.png,benign\n"
                                    f"{secret},malignant\nok2.png,malignant\nok.png,benign\n")
    meta, quarantine, _ = _import(repo, "data/external/csvset/labels.csv")
    assert list(meta.source_file) == ["ok.png", "ok2.png"]
    assert list(quarantine.reason) == ["unsafe path", "unsafe path", "duplicate row"]
    assert "leads out of" in quarantine.detail[0] and "an absolute path" in quarantine.detail[1]


def test_the_columns_are_the_generated_ones(repo, tiny_base):
    """The generator writes the same columns, source and sha256 included, so no reader tells them apart."""
    import shutil

    from dermsynth.diffusion.lora import LoraTrainConfig, train_lora
    from dermsynth.diffusion.sample import GenerateConfig, generate

    shutil.copytree(tiny_base, repo / "models/base")
    paths = [f"real/{i}.png" for i in range(4)]
    for i, p in enumerate(paths):
        _image(repo / p, i, 32, 32)
    cfg = LoraTrainConfig(max_steps=1, batch_size=2, checkpoint_every=1, rank=2, alpha=4, validation_images=0)
    for label in CLASSES:
        train_lora(repo / "models/base", paths, label, repo / "models/lora" / label, repo / ".work/lora", cfg,
                   repo_root=repo)
    gcfg = GenerateConfig(n_per_class=1, batch_size=2, steps_min=2, steps_max=2, threads=1, seed=1)
    generate(gcfg, "models/base", {c: f"models/lora/{c}" for c in CLASSES}, repo / "syn_gen", repo / ".work",
             repo_root=repo)
    gen = pd.read_csv(repo / "syn_gen/metadata.csv", keep_default_na=False)
    _release(repo)
    _import(repo, out="syn_imp")
    imp = pd.read_csv(repo / "syn_imp/metadata.csv", keep_default_na=False)
    assert list(gen.columns) == list(imp.columns) == METADATA_COLUMNS
    assert (gen.source == "models/lora").all() and (gen.source_file == "").all()
    assert all(r.sha256 == hashlib.sha256((repo / r.path).read_bytes()).hexdigest() for r in gen.itertuples())


def _gate(repo, out, n_per_class, meta=None):
    meta = pd.read_csv(repo / out / "metadata.csv", keep_default_na=False) if meta is None else meta
    report = gx_validate("synthetic", synthetic_suite(meta, synthetic_images(meta, repo, workers=1), n_per_class,
                                                      list(CLASSES), SIZE, imported=import_record(repo / out)))
    return report["success"], {(c["table"], c["expectation"]) for c in report["checks"] if not c["success"]}


def test_the_synthetic_gate_checks_what_was_asked(repo):
    base = _release(repo)
    (base / "malignant/extra.png").write_bytes((base / "malignant/wide.png").read_bytes()[:50])  # quarantined
    _import(repo)  # 5 benign, 5 malignant (+1 quarantined): every usable one
    assert _gate(repo, "data/synthetic", 0) == (True, set())
    meta = pd.read_csv(repo / "data/synthetic/metadata.csv", keep_default_na=False)
    assert _gate(repo, "data/synthetic", 0, meta.drop(index=[0])) == (
        False, {("counts", "expect_column_pair_values_to_be_equal")})  # an image of the release went missing
    _import(repo, n=3, out="syn_three")
    assert _gate(repo, "syn_three", 3) == (True, set())
    assert _gate(repo, "syn_three", 4)[1] == {("counts", "expect_column_values_to_be_between")}
    # an imported row still needs where it came from
    assert ("metadata", "expect_column_values_to_not_be_null") in _gate(repo, "syn_three", 3, meta.assign(sha256=""))[1]


def test_the_stages_import_and_gate_a_released_set(repo):
    """stages.generate dispatches on generate.source; summary.json says it was an import and from where; the
    synthetic gate passes; the classifier side's mixing and the preview read the imported metadata."""
    import stages.generate
    import stages.quality_synthetic
    from dermsynth.classify.mixing import MixConfig, mix
    from dermsynth.diffusion.preview import real_vs_synthetic

    _release(repo)
    real = [{"image_id": f"r{i}", "source": "ham10000", "label": CLASSES[i % 2], "split": ("train", "val", "test")[i % 3],
             "path": str(_image(repo / f"data/prepared/images/r{i}.png", 300 + i, SIZE, SIZE).relative_to(repo))}
            for i in range(12)]
    pd.DataFrame(real).to_csv(repo / "data/prepared/manifest.csv", index=False)
    mark_output_dir(repo / "data/prepared")  # as preprocess leaves it, with its recorded size
    (repo / "data/prepared/config.json").write_text(json.dumps({"size": SIZE}))
    params = validate({"prepare": {"size": SIZE}, "generate": {"source": "data/external/derm-t2im", "n_per_class": 0,
                                                               "threads": 1}}, root=repo)
    stages.generate.run(params)
    summary = json.loads((repo / "reports/generate/summary.json").read_text())
    assert summary["mode"] == "import" and summary["source"] == "data/external/derm-t2im"
    assert summary["per_class"] == {"benign": 5, "malignant": 5} and "timings" not in summary
    assert (repo / "reports/generate/real_vs_synthetic.png").is_file()
    stages.quality_synthetic.run(params)
    assert json.loads((repo / "reports/quality/synthetic.json").read_text())["success"]
    synthetic = pd.read_csv(repo / "data/synthetic/metadata.csv", keep_default_na=False)
    manifest = pd.read_csv(repo / "data/prepared/manifest.csv", keep_default_na=False)
    train, counts = mix(manifest[manifest.split == "train"], synthetic, 0.5, MixConfig(), seed=0)
    assert counts["n_synthetic_benign"] + counts["n_synthetic_malignant"] == 2
    assert set(train[train.origin == "synthetic"].path) <= set(synthetic.path)
    assert real_vs_synthetic(manifest, synthetic, 2, 0, repo).size[0] > 0


def test_the_lora_source_still_needs_a_count(repo):
    with pytest.raises(ParamsError) as e:
        validate({"generate": {"n_per_class": 0}}, root=repo)
    assert e.value.lines == ["generate.n_per_class: 0 imports every image of a released set, but generate.source is "
                             "models/lora (the LoRAs make a number of images: give one > 0)"]
    assert validate({"generate": {"source": "./models/lora/"}}, root=repo)["generate"]["n_per_class"] == 3000


def test_the_audit_dataset_takes_imported_rows(repo):
    """FiftyOne samples of imported images: empty steps, CFG and seed are None, not a crash; one view per class."""
    from dermsynth.audit.dataset import build_dataset, dataset_counts

    _release(repo)
    meta, _, _ = _import(repo)
    synthetic = pd.read_csv(repo / "data/synthetic/metadata.csv", keep_default_na=False)
    real = pd.DataFrame([{"image_id": f"r{i}", "source": "ham10000", "label": CLASSES[i % 2], "split": "train",
                          "lesion_id": f"l{i}", "patient_id": "",
                          "path": str(_image(repo / f"real/r{i}.png", 300 + i, SIZE, SIZE).relative_to(repo))}
                         for i in range(4)])
    name = "dermsynth-test-imported"
    ds = build_dataset(real, synthetic, {}, repo, name=name)
    try:
        assert dataset_counts(name)["synthetic"] == len(meta) == 10
        s = ds.match_tags("synthetic").first()
        assert all(s.to_dict().get(f) is None for f in ("seed", "steps", "cfg"))  # none known: no field
        assert s.synthetic_source == "data/external/derm-t2im" and s.sampler == ""
        assert {"synthetic_benign", "synthetic_malignant"} <= set(ds.list_saved_views())
    finally:
        ds.delete()
