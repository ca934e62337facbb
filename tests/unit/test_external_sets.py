"""External test sets (evaluate.external): prepared like the training data, never in it, evaluated by name."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from dermsynth.contracts import ATTRIBUTES, EXTERNAL_COLUMNS, QUARANTINE_COLUMNS
from dermsynth.data.ingest import ingest, unrecognised_folders
from dermsynth.data.preprocess import PrepConfig
from dermsynth.data.records import MISSING_FILE
from dermsynth.data.testsets import IN_PREPARED_SET, prepare_external
from dermsynth.demo.layouts import write_ddi
from dermsynth.params import ParamsError, validate

CFG = PrepConfig(size=32)


@pytest.fixture(scope="module")
def ddi_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    write_ddi(raw / "external" / "ddi", np.random.default_rng(7), per_tone=4)
    return raw


def _prepare(raw, repo, prepared, name="ddi"):
    return prepare_external(name, "ddi", "ddi", raw, repo / "data/testsets", repo, CFG, prepared, phash_distance=4,
                            min_size=48, workers=1)


def _no_prepared():
    return pd.DataFrame({"image_id": pd.Series(dtype=str), "phash": pd.Series(dtype=str)})


def test_a_ddi_download_is_prepared_with_its_skin_types_and_missing_file_quarantined(ddi_raw, tmp_path):
    manifest, quarantine = _prepare(ddi_raw, tmp_path, _no_prepared())
    assert list(manifest.columns) == EXTERNAL_COLUMNS and list(quarantine.columns) == QUARANTINE_COLUMNS
    assert len(manifest) == 12 and set(manifest.split) == {"external"} and set(manifest.source) == {"ddi"}
    # DDI's 12 / 34 / 56 as Fitzpatrick groups, four images each, both classes in each
    assert manifest.fitzpatrick_skin_type.value_counts().to_dict() == {"I-II": 4, "III-IV": 4, "V-VI": 4}
    assert manifest.groupby("fitzpatrick_skin_type").label.nunique().eq(2).all()
    assert (manifest.skin_tone_class == "").all()
    for p in manifest.path:  # written below <external>/<name>/ at prepare.size
        assert p.startswith("data/testsets/ddi/") and (tmp_path / p).is_file()
    assert set(manifest.width) == {32} and manifest.ita.notna().all()
    # the demo's one row without its image
    assert quarantine[["image_id", "reason"]].values.tolist() == [["000013", MISSING_FILE]]


def test_an_image_also_in_the_prepared_set_is_quarantined_not_evaluated(ddi_raw, tmp_path):
    first, _ = _prepare(ddi_raw, tmp_path / "a", _no_prepared())
    # two of the set's images are in the prepared set under other ids (the same pixels: the same pHash)
    prepared = pd.DataFrame({"image_id": ["ISIC_1", "ISIC_2", "ISIC_3"],
                             "phash": [first.phash[0], first.phash[5], f"{int(first.phash[0], 16) ^ 0xFFFF0000FFFF:016x}"]})
    manifest, quarantine = _prepare(ddi_raw, tmp_path / "b", prepared)
    leaked = quarantine[quarantine.reason == IN_PREPARED_SET]
    assert set(leaked.image_id) == {first.image_id[0], first.image_id[5]}
    assert set(manifest.image_id) == set(first.image_id) - set(leaked.image_id)
    assert "ISIC_1" in leaked.detail.iloc[0] or "ISIC_2" in leaked.detail.iloc[0]
    for i in leaked.image_id:  # no image of a quarantined one is left to be read
        assert not (tmp_path / "b/data/testsets/ddi" / f"{i}.png").exists()


def test_a_missing_set_folder_is_one_clear_error(ddi_raw, tmp_path):
    from dermsynth.errors import UserFileError

    with pytest.raises(UserFileError, match=r"evaluate.external.gone: .*external/nowhere does not exist"):
        prepare_external("gone", "ddi", "nowhere", ddi_raw, tmp_path / "out", tmp_path, CFG, _no_prepared(), 4)


def test_ingest_never_reads_the_external_sets(demo_raw):
    """data/raw/external/ (the demo writes demo_ddi there) is no training source and no unrecognised folder."""
    assert (demo_raw / "external" / "demo_ddi" / "ddi_metadata.csv").is_file()
    res = ingest(demo_raw, min_size=48, workers=1)
    assert not res.manifest.file.str.startswith("external").any()
    assert not res.quarantine.file.str.startswith("external").any()
    assert res.unrecognised == [] and unrecognised_folders(demo_raw, list(res.summary()["kept_per_source"])) == []


def test_external_sets_are_evaluated_under_their_own_names(prepared_session, ddi_raw, tmp_path):
    """Every metric under `<name>_`, at the validation threshold; the subgroup table by the skin type the
    archive reports; the prepared set's own test sets unchanged by the extra set."""
    import torch

    from dermsynth.classify.evaluate import evaluate_model
    from dermsynth.classify.metrics import METRICS
    from dermsynth.classify.models import create_classifier
    from dermsynth.classify.subgroups import subgroup_metrics
    from dermsynth.classify.train import TrainConfig, transforms

    root, m = prepared_session
    ext, _ = _prepare(ddi_raw, root, m)
    torch.manual_seed(0)
    model = create_classifier("resnet18", img_size=32)
    _, t_eval = transforms(model, TrainConfig(model="resnet18", img_size=32))
    alone, m_alone, _ = evaluate_model(model, t_eval, m, n_boot=20, seed=0, root=root)
    pred, metrics, _ = evaluate_model(model, t_eval, m, n_boot=20, seed=0, root=root, external={"ddi": ext})
    assert set(pred.testset) == set(alone.testset) | {"ddi"} and (pred.testset == "ddi").sum() == len(ext)
    for k in METRICS:
        assert f"ddi_{k}" in metrics and f"ddi_{k}_ci95" in metrics
    assert metrics["ddi_n"] == len(ext)
    own = {k: v for k, v in metrics.items() if not k.startswith("ddi_")}
    assert json.dumps(own, sort_keys=True) == json.dumps(m_alone, sort_keys=True)
    table = subgroup_metrics(pred[pred.testset == "ddi"], ext, n_boot=20, seed=0, min_per_class=1,
                             attributes=ATTRIBUTES + ("fitzpatrick_skin_type",))
    groups = table[table.attribute == "fitzpatrick_skin_type"].group.unique()
    assert sorted(groups) == ["I-II", "III-IV", "V-VI"]


def _params(**evaluate):
    p = yaml.safe_load(open("params.yaml"))
    p["evaluate"] = {**p["evaluate"], **evaluate}
    return p


@pytest.mark.parametrize("external, problem", [
    ({"isic": {"layout": "ddi", "path": "ddi"}}, "name the prepared set's own test sets"),
    ({"ddi": {"layout": "ddi", "path": "../ddi"}}, "below <paths.raw>/external/"),
    ({"ddi": {"layout": "ddi", "path": "/data/ddi"}}, "below <paths.raw>/external/"),
    ({"ddi": {"layout": "isic2019", "path": "ddi"}}, "evaluate.external.ddi.layout"),
    ({"DDI-1": {"layout": "ddi", "path": "ddi"}}, "evaluate.external"),
    ({"ddi": {"layout": "ddi"}}, "evaluate.external.ddi.path"),
])
def test_the_schema_refuses_what_is_not_an_external_test_set(external, problem):
    with pytest.raises(ParamsError) as e:
        validate(_params(external=external))
    assert problem in str(e.value), str(e.value)


def test_no_external_set_is_allowed():
    assert validate(_params(external={}))["evaluate"]["external"] == {}


def test_check_says_what_each_external_set_holds_and_what_is_wrong(ddi_raw, tmp_path):
    """`dermsynth check`: the images of a set by class; a missing folder and a folder of another layout are
    problems naming the set's key, before anything runs."""
    from dermsynth.check import Report, _external

    (ddi_raw / "external" / "other").mkdir(exist_ok=True)
    (ddi_raw / "external" / "other" / "fitzpatrick17k.csv").write_text("md5hash,three_partition_label\n")
    p = validate(_params(external={"ddi": {"layout": "ddi", "path": "ddi"},
                                   "pad": {"layout": "pad_ufes_20", "path": "other"},
                                   "gone": {"layout": "csv", "path": "gone"}}))
    p["paths"]["raw"] = str(ddi_raw)
    rep = Report()
    _external(p, rep)
    assert dict(rep.rows)["external ddi"].endswith("ddi: ddi, 12 images (6 benign, 6 malignant), +1 unusable rows")
    assert rep.problems == [
        f"evaluate.external.pad: {ddi_raw}/external/other does not look like layout 'pad_ufes_20' (its files are "
        "those of 'fitzpatrick17k')",
        f"evaluate.external.gone: {ddi_raw}/external/gone does not exist (put the csv download there, then "
        "`dvc commit data.dvc`)"]


def test_a_reported_skin_type_is_a_subgroup_attribute_wherever_a_test_set_has_one():
    """The prepared set's ISIC Archive rows carry fitzpatrick_skin_type like an external set's rows do: evaluate
    measures subgroups by it when any image of the set reports one, and never by an empty column."""
    from dermsynth.classify.subgroups import _reported

    m = pd.DataFrame({"image_id": ["a", "b"], "fitzpatrick_skin_type": ["", "III"], "skin_tone_class": ["", ""]})
    assert _reported(m) == ("fitzpatrick_skin_type",)
    assert _reported(m.assign(fitzpatrick_skin_type="")) == ()
    assert _reported(m.drop(columns=["fitzpatrick_skin_type", "skin_tone_class"])) == ()
