"""`dvc repro` and `dvc exp run -S ratio=...` on the embedded demo, in a fresh copy of the repository."""
import hashlib
import json
import re
import shutil
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from dermsynth.classify.metrics import METRICS
from tests.e2e.conftest import CI_PARAMS, run

pytestmark = pytest.mark.slow
MODELS = ["vit_tiny_patch16_224", "mobilenetv2_100"]


def test_raw_data_restored_exactly(clone):
    out = run(["dvc", "status", "data.dvc"], clone).stdout
    assert "up to date" in out.lower(), out


def test_repro_builds_the_data_stages(clone, repro):
    m = pd.read_csv(clone / "data/prepared/manifest.csv", keep_default_na=False)
    assert len(m) > 300 and set(m.split) == {"train", "val", "test"}
    assert all((clone / p).is_file() for p in m.path)
    q = pd.read_csv(clone / "reports/quarantine.csv")
    assert len(q) == 12 and set(q.columns) >= {"source", "image_id", "reason"}
    for suite in ("raw", "prepared", "synthetic"):
        assert json.loads((clone / f"reports/quality/{suite}.json").read_text())["success"]
    assert (clone / "reports/preprocess/examples.png").stat().st_size > 10_000


def test_repro_builds_diffusion_outputs_plain_diffusers_can_load(clone, repro):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(clone / "models/base", safety_checker=None)
    for label in ("benign", "malignant"):
        pipe.load_lora_weights(str(clone / "models/lora" / label), adapter_name=label)
        assert (clone / f"reports/lora/{label}/loss.csv").is_file()
    meta = pd.read_csv(clone / "data/synthetic/metadata.csv", keep_default_na=False)
    n = CI_PARAMS[("generate", "n_per_class")]
    assert list(meta.columns) == ["image_id", "label", "prompt", "negative_prompt", "sampler", "steps", "cfg", "seed",
                                  "lora", "base_model", "path", "device", "dtype", "source", "source_file", "sha256"]
    assert set(meta.source) == {"models/lora"} and set(meta.source_file) == {""}  # generated, not imported
    first = meta.iloc[0]
    assert first.sha256 == hashlib.sha256((clone / first.path).read_bytes()).hexdigest()  # the file's own hash
    assert set(meta.device) == {"cpu"} and set(meta.dtype) == {"float32"}
    assert (meta.groupby("label").size() == n).all() and meta.seed.is_unique
    assert set(meta.sampler) == {"euler", "euler_a", "plms"} and meta.steps.between(20, 26).all()
    assert set(meta.base_model) == {"models/base"} and set(meta.lora) == {"models/lora/benign", "models/lora/malignant"}


def test_metrics_for_both_models_and_test_sets(clone, repro):
    shown = run(["dvc", "metrics", "show", "--json"], clone).stdout
    external = pd.read_csv(clone / "data/testsets/demo_ddi/manifest.csv", dtype={"image_id": str})
    for model in MODELS:
        met = json.loads((clone / f"reports/metrics/{model}.json").read_text())
        for ts in ("isic", "ham10000", "demo_ddi"):
            for k in METRICS:
                assert f"{ts}_{k}" in met and f"{ts}_{k}_ci95" in met
        assert met["demo_ddi_n"] == len(external) == 45
        assert f"{model}.json" in shown
        pred = pd.read_csv(clone / f"reports/predictions/{model}.csv")
        assert list(pred.columns[:5]) == ["image_id", "testset", "label", "score", "pred"]
        assert set(pred.testset) == {"isic", "ham10000"}
        ext = pd.read_csv(clone / f"reports/predictions/{model}_external.csv", dtype={"image_id": str})
        assert set(ext.testset) == {"demo_ddi"} and sorted(ext.image_id) == sorted(external.image_id)
        groups = pd.read_csv(clone / f"reports/metrics/{model}_subgroups.csv")
        ddi = groups[(groups.testset == "demo_ddi") & (groups.attribute == "fitzpatrick_skin_type")]
        assert set(ddi.group) == {"I-II", "III-IV", "V-VI"} and ddi.value.notna().any()
    # the external set is never trained on, nor seen by the LoRAs or the generator
    prepared = pd.read_csv(clone / "data/prepared/manifest.csv", dtype={"image_id": str})
    assert "demo_ddi" not in set(prepared.source) and not prepared.path.str.contains("external").any()
    for model in MODELS:
        drawn = pd.read_csv(clone / f"models/classifiers/{model}/training_set.csv")
        assert not drawn.path.str.contains("external").any()
    for card in ("model_card.md", "data_card.md"):
        assert len((clone / "reports" / card).read_text()) > 500


def test_audit_outputs(clone, repro):
    s = json.loads((clone / "reports/audit/summary.json").read_text())
    assert s["synthetic_images"] == 2 * CI_PARAMS[("generate", "n_per_class")]
    assert set(s["fidelity"]) == {"benign", "malignant", "all"} and all(v["fid"] >= 0 for v in s["fidelity"].values())
    for v in s["fidelity"].values():
        assert all(0 <= v[k] <= 1 for k in ("precision", "recall", "coverage")) and v["density"] >= 0
    assert "trained once on the real training images" in s["feature_space"]
    mem = pd.read_csv(clone / "reports/audit/memorization.csv")
    assert len(mem) == s["synthetic_images"] and "near_copy" in mem.columns
    assert (clone / "reports/audit/near_copies.png").stat().st_size > 5000
    assert json.loads((clone / "reports/audit/dataset.json").read_text())["built"]


def _synthetic_shares_equal(clone, ratio):
    for model in MODELS:
        s = json.loads((clone / f"models/classifiers/{model}/summary.json").read_text())
        for lab in ("benign", "malignant"):
            total = s[f"n_real_{lab}"] + s[f"n_synthetic_{lab}"]
            assert abs(s[f"n_synthetic_{lab}"] - ratio * total) <= 1, (model, lab, s)


def test_default_ratio_has_the_same_synthetic_share_in_every_class(clone, repro):
    _synthetic_shares_equal(clone, 0.5)


def test_second_repro_does_nothing(clone, repro):
    t = time.perf_counter()
    out = run(["dvc", "repro"], clone).stdout
    elapsed = time.perf_counter() - t
    assert "Running stage" not in out and "up to date" in out.lower(), out
    print(f"second dvc repro took {elapsed:.1f}s")


def test_exp_run_ratio_reruns_only_the_classifier_side(clone, repro):
    """`dvc exp run -S ratio=0.75` (the README's command): nothing upstream of the classifiers re-runs, every
    class gets the same synthetic share, and MLflow holds a complete run per model with its ratio."""
    out = run(["dvc", "exp", "run", "-S", "ratio=0.75"], clone, timeout=3600).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    # memorisation and fidelity (stage audit) and their feature space never re-run for a ratio
    # `params` checks every -S value first; track@ completes each run in MLflow
    assert ran == {f"{s}@{m}" for s in ("train", "evaluate", "track") for m in MODELS} | {
        "params", "cards", "audit_dataset"}, ran
    _synthetic_shares_equal(clone, 0.75)
    runs = _mlflow_runs(clone)
    at_075 = runs[runs["params.ratio"] == "0.75"]
    assert set(at_075["params.model"]) == set(MODELS)
    for _, r in at_075.iterrows():
        assert all(f"metrics.{ts}_{k}" in runs.columns and pd.notna(r[f"metrics.{ts}_{k}"])
                   for ts in ("isic", "ham10000") for k in METRICS)
        assert r["tags.dvc_exp_name"]


def test_failed_gate_stops_repro(clone, repro):
    """A quality parameter no data can meet: the gate stage fails and names the expectation."""
    params = (clone / "params.yaml").read_text()
    try:
        (clone / "params.yaml").write_text(params.replace("min_minority_fraction: 0.1", "min_minority_fraction: 0.45"))
        p = run(["dvc", "repro", "quality_prepared"], clone, check=False)
        assert p.returncode != 0
        assert "quality gate 'prepared' failed" in p.stderr + p.stdout
        assert "minority_fraction" in p.stderr + p.stdout
    finally:
        (clone / "params.yaml").write_text(params)


def test_prior_preservation_runs_on_the_demo(clone, repro, tmp_path):
    """DreamBooth's prior preservation through the stage, at reduced steps: class images are rendered
    into .work and trained on beside the instance images (they were once opened relative to /)."""
    params = (clone / "params.yaml").read_text()
    p = yaml.safe_load(params)
    p["lora"].update(prior_preservation=True, num_class_images=4, max_steps=4, checkpoint_every=2)
    reports = clone / "reports/lora/malignant"
    shutil.copytree(reports, tmp_path / "reports")  # the repro's own (uncached) reports, to put back
    try:
        (clone / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        run([sys.executable, "-m", "stages.train_lora", "--label", "malignant"], clone)
        summary = json.loads((clone / "reports/lora/malignant/summary.json").read_text())
        assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
        assert len(list((clone / ".work/lora").glob("malignant-*/class_images/*.png"))) == 4
    finally:  # put the pipeline's own outputs back for the tests after this one
        (clone / "params.yaml").write_text(params)
        shutil.rmtree(reports)
        shutil.copytree(tmp_path / "reports", reports)
        run(["dvc", "checkout", "-f", "train_lora@malignant"], clone)
        assert run(["dvc", "status", "train_lora@malignant"], clone).stdout.strip().endswith("up to date.")


def test_subgroup_metrics_are_recomputable_from_the_predictions(clone, repro):
    """reports/metrics/<model>_subgroups.csv = predictions joined with the manifest on image_id."""
    from dermsynth.classify.subgroups import subgroup_metrics, worst_and_gap

    from dermsynth.contracts import ATTRIBUTES

    params = yaml.safe_load((clone / "params.yaml").read_text())
    n_boot, seed = params["evaluate"]["bootstrap"], params["seed"]
    read = dict(keep_default_na=False, dtype={"image_id": str})
    manifest = pd.read_csv(clone / "data/prepared/manifest.csv", **read)
    external = pd.read_csv(clone / "data/testsets/demo_ddi/manifest.csv", **read)
    for m in MODELS:
        committed = pd.read_csv(clone / f"reports/metrics/{m}_subgroups.csv", keep_default_na=False,
                                na_values={"value": [""], "ci_low": [""], "ci_high": [""]})
        pred = pd.read_csv(clone / f"reports/predictions/{m}.csv", dtype={"image_id": str})
        ext = pd.read_csv(clone / f"reports/predictions/{m}_external.csv", dtype={"image_id": str})
        # the prepared set's test sets by the manifest's groups (and a reported skin type, where an ISIC Archive
        # download gives one: the demo has none); the external set by its own groups and DDI's skin type
        assert (manifest.fitzpatrick_skin_type == "").all() and (external.fitzpatrick_skin_type != "").all()
        reported = ATTRIBUTES + ("fitzpatrick_skin_type",)
        again = pd.concat([subgroup_metrics(pred, manifest, n_boot, seed),
                           subgroup_metrics(ext, external, n_boot, seed, attributes=reported)], ignore_index=True)
        assert len(again) == len(committed)
        assert np.allclose(again.value, committed.value, equal_nan=True, atol=1e-9)
        assert np.allclose(again.ci_low, committed.ci_low, equal_nan=True, atol=1e-9)
        for testset, g in committed.groupby("testset"):
            assert set(g.attribute) == set(reported if testset == "demo_ddi" else ATTRIBUTES), testset
        flat = json.loads((clone / f"reports/metrics/{m}.json").read_text())
        for k, v in worst_and_gap(again).items():
            assert flat[k] == pytest.approx(v), k


def test_skin_tone_of_the_demo_matches_its_ground_truth(clone, repro):
    manifest = pd.read_csv(clone / "data/prepared/manifest.csv", keep_default_na=False, dtype={"image_id": str})
    truth = pd.read_csv(clone / "data/raw/phantom_skin_truth.csv")
    both = manifest.merge(truth, on=["source", "image_id"], suffixes=("", "_true"))
    assert len(both) == len(manifest)
    assert (both.skin_tone == both.skin_tone_true).mean() >= 0.9
    tones = json.loads((clone / "reports/audit/skin_tone.json").read_text())
    assert set(tones) == {"benign", "malignant"} and all(t["wasserstein_ita_degrees"] >= 0 for t in tones.values())


def test_forced_rerun_reproduces_the_lock_and_the_reports(clone, repro):
    """Every output that could vary between identical runs (LoRA checkpoints, classifier files, KID,
    timings) is the same when the stages run again: a fresh clone's `make run` leaves git clean."""
    run(["git", "checkout", "params.yaml"], clone)  # experiments run in the workspace leave their params there
    run(["dvc", "repro"], clone)
    run(["git", "add", "-A"], clone)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "after repro", "--allow-empty"], clone)
    shutil.rmtree(clone / ".work", ignore_errors=True)  # no resume: train and render from scratch
    for stage in ("train_lora@malignant", "generate", f"train@{MODELS[1]}", "audit_features", "audit"):
        run(["dvc", "repro", "-f", "-s", stage], clone, timeout=3600)
    status = run(["git", "status", "--porcelain"], clone).stdout
    assert status == "", status


def test_exp_run_keep_fraction_reruns_only_the_filter_and_what_follows(clone, repro):
    """`filter.keep_fraction: 0.8`: the audit and everything upstream stay; a classifier draws only from the
    kept 80 % of each class. One classifier is trained (the other would draw the same way, as the unit tests
    show), and DVC's status names what else the change makes stale."""
    run(["git", "checkout", "params.yaml"], clone)  # experiments run in the workspace leave their params there
    params = (clone / "params.yaml").read_text()
    p = yaml.safe_load(params)
    p["filter"]["keep_fraction"] = 0.8
    try:
        (clone / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        out = run(["dvc", "repro", f"train@{MODELS[0]}"], clone, timeout=3600).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert ran == {"params", "filter", f"train@{MODELS[0]}"}, ran
        stale = set(json.loads(run(["dvc", "status", "--json"], clone).stdout))
        assert {f"train@{MODELS[1]}", f"evaluate@{MODELS[0]}"} <= stale, stale
        assert not stale & {"ingest", "preprocess", "train_lora@benign", "generate", "audit_features", "audit"}, stale
        scores = pd.read_csv(clone / "data/filter/scores.csv", keep_default_na=False)
        n = CI_PARAMS[("generate", "n_per_class")]
        flagged = scores[scores.reason.isin(["blank", "near-copy"])].groupby("label").size()
        for label, g in scores.groupby("label"):
            assert (g.kept.astype(str) == "True").sum() == min(round(0.8 * n), n - int(flagged.get(label, 0)))
        kept = set(scores.image_id[scores.kept.astype(str) == "True"])
        used = pd.read_csv(clone / f"models/classifiers/{MODELS[0]}/training_set.csv")
        synthetic = set(used.image_id[used.origin == "synthetic"])
        assert synthetic and synthetic <= kept
    finally:
        (clone / "params.yaml").write_text(params)


def test_a_model_is_added_with_one_setting(clone, repro):
    """`dvc exp run -S 'train.models=[resnet18]'` and nothing else: no overrides entry needed."""
    run(["git", "checkout", "params.yaml", "dvc.lock"], clone)
    for f in ("reports/metrics/resnet18.json", "reports/train_config/resnet18.json"):
        (clone / f).unlink(missing_ok=True)
    out = run(["dvc", "exp", "run", "-S", "train.models=[resnet18]"], clone, timeout=3600).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert not {"audit", "audit_features", "generate", "preprocess"} & ran, ran
    met = json.loads((clone / "reports/metrics/resnet18.json").read_text())
    assert all(f"{ts}_{k}" in met for ts in ("isic", "ham10000") for k in METRICS)
    settings = json.loads((clone / "reports/train_config/resnet18.json").read_text())
    assert settings["train"]["model"] == "resnet18" and settings["train"]["img_size"] > 0
    assert (clone / "models/classifiers/resnet18/model.safetensors").is_file()
    run(["git", "checkout", "params.yaml", "dvc.lock"], clone)


def test_an_ensemble_is_evaluated_like_a_model(clone, repro):
    """`evaluate.ensembles` (docs/seed_studies.md): one more stage from the members' predictions, no retraining;
    its metrics file has a model's keys, MLflow a run for it, `dermsynth metrics` a row."""
    run(["git", "checkout", "params.yaml", "dvc.lock"], clone)
    out = run(["dvc", "exp", "run", "-S", f"+evaluate.ensembles.all=[{','.join(MODELS)}]"], clone,
              timeout=3600).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    # no classifier trains or is evaluated again; audit_dataset re-runs only where an earlier test left other
    # models' prediction files in reports/predictions (resnet18's)
    assert {"params", "ensemble@all", "cards"} <= ran <= {"params", "ensemble@all", "cards", "audit_dataset"}, ran
    met = json.loads((clone / "reports/metrics/all.json").read_text())
    assert all(f"{ts}_{k}" in met and f"{ts}_{k}_ci95" in met for ts in ("isic", "ham10000") for k in METRICS)
    assert met["members"] == MODELS and (clone / "reports/ensembles/all/subgroups.csv").is_file()
    runs = _mlflow_runs(clone)
    ens = runs[runs["params.model"] == "all"]
    assert len(ens) == 1 and ens["params.ensemble_members"].iloc[0] == ",".join(MODELS)
    assert ens[[f"metrics.{ts}_auc" for ts in ("isic", "ham10000")]].notna().all(axis=None)
    table = run([sys.executable, "-m", "dermsynth.cli", "metrics"], clone).stdout
    assert "all: ensemble of vit_tiny_patch16_224, mobilenetv2_100" in " ".join(table.split()), table
    run(["git", "checkout", "params.yaml", "dvc.lock"], clone)


def _mlflow_runs(clone):
    """The clone's MLflow runs, read by a fresh process: this one's MLflow keeps its SQLite connection open, and
    that would still read a store the test has deleted."""
    out = clone / ".work" / "runs.json"
    code = ("from dermsynth import tracking; "
            f"tracking.runs().to_json({str(out)!r}, orient='split')")
    out.parent.mkdir(exist_ok=True)
    run([sys.executable, "-c", code], clone)
    return pd.read_json(out, orient="split", dtype=False)


def _complete(runs) -> bool:
    return all(f"metrics.{ts}_{k}" in runs.columns and runs[f"metrics.{ts}_{k}"].notna().all()
               for ts in ("isic", "ham10000") for k in METRICS)


def test_a_fresh_tracking_store_gets_complete_runs_and_no_duplicates(clone, repro):
    """A fresh clone: no MLflow store, classifiers re-trained byte-identically (so DVC skips evaluate), or
    restored from DVC's cache (so nothing trains at all). Either way one complete run per model."""
    run(["git", "checkout", "params.yaml"], clone)
    run(["dvc", "repro"], clone)  # the workspace as committed
    for case in ("retrained", "restored"):
        for p in ("mlflow.db", "mlruns", ".mlflow-sync"):
            shutil.rmtree(clone / p, ignore_errors=True) if (clone / p).is_dir() else (clone / p).unlink(missing_ok=True)
        # retrained: DVC trains one model again (byte-identically) and the other's files stay; restored: DVC
        # checks every classifier out of the run cache. Either way no evaluate@ runs and the store starts empty.
        gone = [MODELS[0]] if case == "retrained" else MODELS
        for m in gone:
            shutil.rmtree(clone / "models/classifiers" / m)
        out = run(["dvc", "repro"] + (["--no-run-cache"] if case == "retrained" else []), clone, timeout=3600).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert not any(s.startswith("evaluate@") for s in ran), (case, ran)
        assert {f"track@{m}" for m in MODELS} <= ran, (case, ran)
        runs = _mlflow_runs(clone)
        assert sorted(runs["params.model"]) == sorted(MODELS), (case, runs["params.model"].tolist())
        assert _complete(runs), case
        assert (runs["params.ratio"] == "0.5").all() and runs["metrics.best_val_auc"].notna().all()
        again = run(["dvc", "repro"], clone).stdout
        assert "Running stage" not in again and len(_mlflow_runs(clone)) == len(MODELS), case


def test_a_bad_value_stops_before_any_output_is_removed(clone, repro):
    """`dvc exp run -S` with a typo, a value out of range, or a path that names a tracked folder: the
    params stage stops the run before DVC removes any stage's outputs."""
    run(["git", "checkout", "params.yaml"], clone)
    run(["dvc", "repro"], clone)
    watched = ["reports/model_card.md", "reports/data_card.md", "data/filter/scores.csv", "data/prepared/manifest.csv",
               "configs/dvc_plots/offline.html", f"models/classifiers/{MODELS[0]}/model.safetensors"]
    before = {f: (clone / f).read_bytes() for f in watched}
    # DVC itself refuses `-S train.epoch=5` (a key params.yaml lacks); `+train.epoch=5` writes it. `dvc exp
    # run` checks the workspace out before any stage runs and deletes what an output path it has no hash
    # for holds: dvc.yaml names the output folders literally, so a path setting moves none of them
    for setting in ("+train.epoch=5", "filter.policy=combind", "ratio=75", "paths.prepared=configs",
                    "paths.synthetic=docs", "paths.reports=../elsewhere"):
        p = run(["dvc", "exp", "run", "-S", setting], clone, check=False, timeout=600)
        ran = set(re.findall(r"Running stage '([^']+)'", p.stdout))
        assert p.returncode != 0 and ran <= {"params"}, (setting, ran, p.stdout[-2000:], p.stderr[-2000:])
        assert "ERROR: " + setting.split("=")[0].lstrip("+") in p.stderr + p.stdout, (setting, p.stderr[-2000:])
        assert {f: (clone / f).read_bytes() for f in watched} == before, setting
        run(["git", "checkout", "params.yaml"], clone)
        assert not run(["git", "status", "--porcelain", "--", "configs", "docs"], clone).stdout, setting
    text = (clone / "params.yaml").read_text()
    for old, new in (("  prepared: data/prepared", "  prepared: configs"), ("  reports: reports", "  reports: ../elsewhere")):
        (clone / "params.yaml").write_text(text.replace(old, new, 1))
        p = run(["dvc", "repro"], clone, check=False, timeout=600)
        ran = set(re.findall(r"Running stage '([^']+)'", p.stdout))
        assert p.returncode != 0 and ran <= {"params"}, (new, ran, p.stdout[-2000:])
        assert "ERROR: paths." in p.stderr + p.stdout
        assert {f: (clone / f).read_bytes() for f in watched} == before, new
    run(["git", "checkout", "params.yaml"], clone)
    assert not (clone.parent / "elsewhere").exists()
