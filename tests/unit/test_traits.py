"""Prompt-controlled traits: captions from metadata, an exact asked-for mix, adherence measured."""
from collections import Counter

import pandas as pd
import pytest

from dermsynth.errors import UserValueError
from dermsynth.traits import adherence, caption, draw, shares

TEMPLATE = "a dermoscopic image of sks {label} lesion, {site}, {skin_tone} skin"


def test_caption_from_the_rows_traits_and_unknown_clauses_dropped():
    row = {"site": "head_neck", "skin_tone": "very_light"}
    assert caption(TEMPLATE, "malignant", row) == "a dermoscopic image of sks malignant lesion, head neck, very light skin"
    assert caption(TEMPLATE, "benign", {"site": "unknown", "skin_tone": "dark"}) == \
        "a dermoscopic image of sks benign lesion, dark skin"
    assert caption(TEMPLATE, "benign", pd.Series({"site": "", "skin_tone": "unknown"})) == \
        "a dermoscopic image of sks benign lesion"
    assert caption("a dermoscopic image of sks {label} lesion", "benign", row) == "a dermoscopic image of sks benign lesion"


def test_shares_match_real_uniform_and_explicit():
    real = pd.Series(["light"] * 6 + ["dark"] * 2 + ["unknown"] * 5)
    assert shares("match_real", "skin_tone", real) == {"light": 0.75, "dark": 0.25}
    u = shares("uniform", "skin_tone", real)
    assert len(u) == 6 and sum(u.values()) == pytest.approx(1) and len(set(u.values())) == 1
    assert shares({"dark": 3, "brown": 1}, "skin_tone", real) == {"brown": 0.25, "dark": 0.75}
    with pytest.raises(UserValueError, match=r"\['purple'\] not in"):
        shares({"purple": 1}, "skin_tone", real)
    with pytest.raises(UserValueError, match="no real training image of the class has a known skin_tone"):
        shares("match_real", "skin_tone", pd.Series(["unknown"]))


def test_draw_gives_exactly_the_mix_in_a_seeded_order():
    mix = {"light": 0.5, "tan": 0.3, "dark": 0.2}
    got = draw(mix, 101, seed=1)
    assert len(got) == 101 and Counter(got) == {"light": 51, "tan": 30, "dark": 20}  # 50.5 / 30.3 / 20.2
    assert draw(mix, 101, seed=1) == got and draw(mix, 101, seed=2) != got


def test_adherence_table_and_share_on_target():
    requested = pd.Series(["dark"] * 4 + ["very_light"] * 4)
    measured = pd.Series(["dark", "dark", "brown", "unknown", "very_light", "very_light", "very_light", "light"])
    a = adherence(requested, measured, "skin_tone")
    assert a["n"] == 8 and a["share_on_target"] == pytest.approx(5 / 8)
    assert a["on_target_by_request"]["dark"] == 0.5 and a["on_target_by_request"]["very_light"] == 0.75
    assert a["on_target_by_request"]["tan"] is None  # never asked for
    assert a["confusion"]["dark"] == {"very_light": 0, "light": 0, "intermediate": 0, "tan": 0, "brown": 1, "dark": 2,
                                      "unknown": 1}
    assert a["requested_mix"]["dark"] == 0.5 and a["measured_mix"]["unknown"] == 1 / 8


def test_generation_asks_for_the_traits_and_the_gate_checks_them(gen_repo):
    """generate.attributes: each image's prompt names its traits, metadata.csv records them (requested_<trait>),
    the counts are exactly the mix asked for, and the synthetic gate accepts known values only."""
    from dermsynth.diffusion.sample import GenerateConfig, generate
    from dermsynth.quality.gate import validate as gx_validate
    from dermsynth.quality.suites import synthetic_images, synthetic_suite
    from dermsynth.traits import request

    cfg = GenerateConfig(n_per_class=4, batch_size=4, steps_min=3, steps_max=3, threads=1, seed=1,
                         prompt="a dermoscopic image of sks {label} lesion, {site}, {skin_tone} skin")
    real = pd.DataFrame({"label": ["benign"] * 3 + ["malignant"] * 3,
                         "site": ["torso", "torso", "head_neck", "palms_soles", "torso", "unknown"]})
    requested = request({"skin_tone": {"dark": 1, "very_light": 1}, "site": "match_real"}, real, cfg.classes, 4, 1)
    loras = {c: f"models/lora/{c}" for c in cfg.classes}
    generate(cfg, "models/base", loras, gen_repo / "syn_traits", gen_repo / ".work-traits", repo_root=gen_repo,
             requested=requested)
    meta = pd.read_csv(gen_repo / "syn_traits/metadata.csv", keep_default_na=False)
    assert list(meta.columns[-2:]) == ["requested_site", "requested_skin_tone"]
    assert meta.groupby("label").requested_skin_tone.value_counts().to_dict() == {
        ("benign", "dark"): 2, ("benign", "very_light"): 2, ("malignant", "dark"): 2, ("malignant", "very_light"): 2}
    # match_real: benign torso twice as often as head/neck; malignant never a site its real images lack
    assert set(meta[meta.label == "malignant"].requested_site) <= {"palms_soles", "torso"}
    assert Counter(meta[meta.label == "benign"].requested_site) in ({"torso": 3, "head_neck": 1}, {"torso": 2, "head_neck": 2})
    for r in meta.itertuples():
        assert r.prompt == f"a dermoscopic image of sks {r.label} lesion, {r.requested_site.replace('_', ' ')}, " \
                           f"{r.requested_skin_tone.replace('_', ' ')} skin"

    def gate(m):
        report = gx_validate("synthetic", synthetic_suite(m, synthetic_images(m, gen_repo, workers=1), 4,
                                                          list(cfg.classes), 32))
        return report["success"], {c["expectation"] for c in report["checks"] if not c["success"]}
    assert gate(meta) == (True, set())
    assert gate(meta.assign(requested_skin_tone="purple")) == (False, {"expect_column_values_to_be_in_set"})


def test_adherence_report_per_requested_band():
    from dermsynth.traits import adherence_report

    synthetic = pd.DataFrame({"image_id": list("abcd"), "label": ["benign", "benign", "malignant", "malignant"],
                              "requested_skin_tone": ["dark", "very_light", "dark", "very_light"]})
    tones = pd.DataFrame({"image_id": list("abcd") + ["r"], "origin": ["synthetic"] * 4 + ["real"],
                          "ita": [-40.0, 60.0, 10.0, 58.0, 0.0], "skin_tone": ["dark", "very_light", "tan", "very_light", "tan"]})
    rep = adherence_report(synthetic, tones)
    assert rep["requested"] == ["skin_tone"]
    assert rep["skin_tone"]["all"]["share_on_target"] == 0.75
    assert rep["skin_tone"]["all"]["median_ita_by_request"] == {"dark": -15.0, "very_light": 59.0}
    assert rep["skin_tone"]["malignant"]["on_target_by_request"]["dark"] == 0.0
    assert adherence_report(synthetic.drop(columns="requested_skin_tone"), tones)["requested"] == []


def test_the_params_stage_refuses_an_unknown_trait_value():
    from dermsynth.traits import check_attributes

    check_attributes({"skin_tone": "uniform", "site": {"torso": 1}})
    with pytest.raises(UserValueError, match=r"generate.attributes.skin_tone: \['purple'\] not in"):
        check_attributes({"skin_tone": {"purple": 1}})


def test_the_stages_caption_the_loras_and_ask_for_the_traits(prepared_session, tiny_base, tmp_path, monkeypatch):
    """train_lora@ with lora.caption attributes, then generate with generate.attributes, as DVC runs them."""
    import json
    import shutil
    import sys

    import stages.generate
    import stages.train_lora
    from dermsynth.params import validate
    from dermsynth.paths import mark_output_dir

    root, m = prepared_session
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/images").symlink_to(root / "data/prepared/images")
    m.to_csv(tmp_path / "data/prepared/manifest.csv", index=False)
    (tmp_path / "data/prepared/config.json").write_text('{"size": 32}')
    mark_output_dir(tmp_path / "data/prepared")
    shutil.copytree(tiny_base, tmp_path / "models/base")
    params = validate({"prepare": {"size": 32},
                       "lora": {"caption": "attributes", "max_steps": 2, "batch_size": 2, "checkpoint_every": 2,
                                "validation_images": 1, "threads": 1},
                       "generate": {"n_per_class": 3, "prompt": "a dermoscopic image of sks {label} lesion, {skin_tone} skin",
                                    "attributes": {"skin_tone": "match_real"}, "steps_min": 3, "steps_max": 3,
                                    "batch_size": 4, "threads": 1}}, root=tmp_path)
    for label in ("benign", "malignant"):
        monkeypatch.setattr(sys, "argv", ["train_lora", "--label", label])
        stages.train_lora.run(params)
        rec = json.loads((tmp_path / "models/lora" / label / "dermsynth_config.json").read_text())
        assert rec["captions"] > 1 and "{skin_tone}" in rec["caption_template"]
    stages.generate.run(params)
    meta = pd.read_csv(tmp_path / "data/synthetic/metadata.csv", keep_default_na=False)
    train = m[m.split == "train"]
    for label, g in meta.groupby("label"):
        # match_real: only bands the class's real training images have; the prompt names each image's band
        assert set(g.requested_skin_tone) <= set(train[train.label == label].skin_tone)
        assert all(p.endswith(f"{t.replace('_', ' ')} skin") for p, t in zip(g.prompt, g.requested_skin_tone))
    summary = json.loads((tmp_path / "reports/generate/summary.json").read_text())
    assert sum(summary["requested"]["benign"]["skin_tone"].values()) == 3
