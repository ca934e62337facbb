"""Results a user can read at a glance: `dermsynth metrics` (per test set, model x headline metrics
with intervals), `--by ratio` (a study's MLflow runs, mean and SD over seeds), `dermsynth runs`, and
the flags of degenerate results, the same in the commands and in the model card."""
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermsynth import results, testset_names, tracking
from dermsynth.cli import main

ROOT = Path(__file__).resolve().parents[2]
VIT, MOBILENET = "vit_tiny_patch16_224", "mobilenetv2_100"


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A repository root (dvc.yaml) with the default MLflow store <root>/mlflow.db; the test works there."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    for v in ("DVC_ROOT", "MLFLOW_TRACKING_URI", "DVC_EXP_NAME"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.chdir(root)
    return root


def _params(root: Path, models: list[str]) -> None:
    # every other key takes the schema's default (dermsynth/params): reports in reports/
    (root / "params.yaml").write_text(f"train:\n  models: [{', '.join(models)}]\n")


def _metrics(**testsets: dict) -> dict:
    """A metrics file as the evaluate stage writes it: per test set the metric, its interval and n."""
    out = {"threshold": 0.5}
    for ts, spec in testsets.items():
        n = spec.pop("n", 50)
        for m in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "auc", "pauc80"):
            v = spec.get(m, 0.7 if m != "pauc80" else 0.05)
            out[f"{ts}_{m}"] = v
            out[f"{ts}_{m}_ci95"] = spec.get(f"{m}_ci95", [max(v - 0.1, 0.0), min(v + 0.1, 1.0)])
        out[f"{ts}_n"] = n
    out["isic_auc_worst_sex"] = 0.6  # subgroup keys must not read as a test set or carry a flag
    return out


def _write(root: Path, model: str, metrics: dict, best_val_auc: float | None = None) -> None:
    (root / "reports/metrics").mkdir(parents=True, exist_ok=True)
    (root / "reports/metrics" / f"{model}.json").write_text(json.dumps(metrics))
    if best_val_auc is not None:
        (root / "models/classifiers" / model).mkdir(parents=True, exist_ok=True)
        (root / "models/classifiers" / model / "summary.json").write_text(json.dumps({"best_val_auc": best_val_auc}))


def _sections(out: str) -> dict[str, str]:
    """The printed output cut into its per-test-set sections (title line to the next blank line)."""
    return {block.splitlines()[0].split(" test set")[0]: block for block in out.strip().split("\n\n")
            if " test set" in block.splitlines()[0]}


def _fits(out: str) -> None:
    long = [line for line in out.splitlines() if len(line) > results.WIDTH]
    assert not long, long


def test_committed_demo_outputs_flag_the_vit_ham10000_one_class_prediction(repo, capsys):
    """The acceptance case: on a copy of the repository's committed demo outputs (ViT-Tiny HAM10000
    sensitivity 0, specificity 1), `dermsynth metrics` flags that one-class prediction under the
    HAM10000 table, and only there."""
    committed = json.loads((ROOT / "reports/metrics" / f"{VIT}.json").read_text())
    if not (committed["ham10000_sensitivity"] == 0.0 and committed["ham10000_specificity"] == 1.0):
        pytest.skip("the committed ViT-Tiny result is no longer one-class on HAM10000 (the pipeline re-ran)")
    _params(repo, [VIT, MOBILENET])
    for model in (VIT, MOBILENET):
        (repo / "reports/metrics").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "reports/metrics" / f"{model}.json", repo / "reports/metrics")
    main(["metrics"])
    out = capsys.readouterr().out
    _fits(out)
    parts = _sections(out)
    assert list(parts) == ["ISIC", "HAM10000", "DEMO_DDI"]  # the demo's external test set last
    assert f"{VIT} predicts every HAM10000 test image benign (sensitivity 0.000, specificity 1.000" in parts["HAM10000"]
    assert "predicts every" not in parts["ISIC"] and f"{MOBILENET} predicts" not in out
    # its intervals of zero width are named, not printed as certainty
    vit_row = next(line for line in parts["HAM10000"].splitlines() if line.startswith(VIT))
    assert "0.000 [zero width]" in vit_row and "[0.00, 0.00]" not in vit_row
    assert f"HAM10000 test set (n = {committed['ham10000_n']} images)" in parts["HAM10000"]
    # the models' training summaries are DVC outputs, absent from this copy: said, not guessed
    assert f"note: {VIT}: no models/classifiers/{VIT}/summary.json" in out


def test_hand_made_files_raise_each_flag_where_it_belongs_and_nowhere_else(repo, capsys):
    """Hand-made metrics files, one degenerate result each, so that the flags can be seen to fail: a
    healthy model gets none; one-class predictions either way, a validation AUROC below 0.5 and an
    interval of zero width each get theirs, under the right table; a third test set is found from its
    keys; a metrics file of a model params.yaml no longer names is shown and said to be stale."""
    _params(repo, ["good", "benign_only", "all_malignant", "flat"])
    _write(repo, "good", _metrics(isic={}, ham10000={}), best_val_auc=0.8)
    _write(repo, "benign_only", _metrics(isic={"sensitivity": 0.0, "specificity": 1.0}, ham10000={}), best_val_auc=0.7)
    _write(repo, "all_malignant", _metrics(isic={}, ham10000={"sensitivity": 1.0, "specificity": 0.0}),
           best_val_auc=0.45)
    _write(repo, "flat", _metrics(isic={}, ham10000={"auc": 0.71, "auc_ci95": [0.71, 0.71]}, derm7pt={"n": 20}),
           best_val_auc=0.9)
    _write(repo, "dropped_model", _metrics(isic={}, ham10000={}))
    main(["metrics"])
    out = capsys.readouterr().out
    _fits(out)
    parts = _sections(out)
    assert list(parts) == ["ISIC", "HAM10000", "DERM7PT"]  # the project's test sets first, then any other
    assert "good" not in "".join(line for line in out.splitlines() if "!" in line)
    assert "benign_only predicts every ISIC test image benign" in parts["ISIC"]
    assert "all_malignant predicts every HAM10000 test image malignant" in parts["HAM10000"]
    assert "predicts every" not in parts["DERM7PT"]
    for part in parts.values():  # about the model, so under every table it is in
        assert ("all_malignant: best validation AUROC 0.450, below 0.5" in part) == ("all_malignant" in part)
    flat = next(line for line in parts["HAM10000"].splitlines() if line.startswith("flat "))
    assert "0.710 [zero width]" in flat and "[0.71, 0.71]" not in out
    assert "flat on HAM10000: interval of zero width for AUROC 0.71" in parts["HAM10000"]
    assert "flat on ISIC" not in out and "(n = 20 images)" in parts["DERM7PT"]
    assert "note: dropped_model: not in params.yaml train.models" in out

    main(["metrics", "--json"])
    js = json.loads(capsys.readouterr().out)
    by_set = {t["testset"]: t for t in js["testsets"]}
    kinds = {(f["model"], f["testset"], f["kind"]) for t in js["testsets"] for f in t["flags"]}
    assert kinds == {("benign_only", "isic", "one_class"), ("all_malignant", "ham10000", "one_class"),
                     ("all_malignant", None, "below_chance_validation"), ("flat", "ham10000", "zero_width")}
    flat_auc = next(r for r in by_set["ham10000"]["rows"] if r["model"] == "flat")["metrics"]["auc"]
    assert flat_auc == {"value": 0.71, "ci95": [0.71, 0.71], "zero_width": True}
    assert [r["model"] for r in by_set["derm7pt"]["rows"]] == ["flat"]


def test_flags_are_one_function_for_the_card_and_the_command():
    """The model card and `dermsynth metrics` take their flags from dermsynth.results.flags, and a
    near-miss (sensitivity 0.02) is not a one-class prediction."""
    met = _metrics(isic={"sensitivity": 0.0, "specificity": 1.0}, ham10000={"sensitivity": 0.02, "specificity": 1.0})
    fl = results.flags("m", met, {"best_val_auc": 0.5})
    assert [(f.testset, f.kind) for f in fl] == [("isic", "one_class")]  # 0.5 is chance, not below it
    assert testset_names.testsets(["best_val_auc", "val_auc", "isic_auc_worst_sex"] + list(met)) == ["isic", "ham10000"]
    assert testset_names.testsets(["metrics.best_val_auc", "metrics.val_auc", "params.ratio"]) == []


def test_model_card_lists_the_same_flags(repo):
    from dermsynth.cards import model_card
    from dermsynth.config import load_params

    _params(repo, [VIT, MOBILENET])
    shutil.copytree(ROOT / "reports/metrics", repo / "reports/metrics")
    for model in (VIT, MOBILENET):  # summaries as the demo's: ViT-Tiny's validation AUROC below chance
        (repo / "models/classifiers" / model).mkdir(parents=True)
        (repo / "models/classifiers" / model / "summary.json").write_text(json.dumps(
            {"best_val_auc": 0.419 if model == VIT else 0.826, "n_real_benign": 111, "n_real_malignant": 45,
             "n_synthetic_benign": 110, "n_synthetic_malignant": 44, "achieved_ratio": 0.4968}))
    params = load_params()
    card = model_card(params, params["train"]["models"], Path("reports"), Path("models/classifiers"))
    expected = [f for m in (VIT, MOBILENET) for f in results.flags(
        m, json.loads((repo / "reports/metrics" / f"{m}.json").read_text()),
        json.loads((repo / "models/classifiers" / m / "summary.json").read_text()))]
    assert any(f.kind == "below_chance_validation" for f in expected)
    section = card.split("**Degenerate results**")[1].split("**")[0]
    assert [line[2:] for line in section.splitlines() if line.startswith("- ")] == [f.text for f in expected]
    for f in expected:
        if f.kind == "zero_width":  # the card's cells say so too, instead of [1.00, 1.00]
            assert "[zero width]" in card
    assert not re.search(r"\[(\d\.\d\d), \1\]", card)


def test_model_slug_is_the_classifiers_own():
    from dermsynth.classify.models import model_slug

    for name in ("vit_tiny_patch16_224", "hf-hub:timm/convnext_tiny.fb_in22k", "org/model:tag"):
        assert results.model_slug(name) == model_slug(name)


def _log(model: str, ratio: float, seed: int, auc: float, sens: float = 0.6, spec: float = 0.7,
         best_val: float = 0.8, real_fraction: float = 1.0, name: str | None = None) -> str:
    """One finished run as the train and track stages leave it."""
    params = {"model": model, "ratio": ratio, "seed": seed, "data_seed": 42, "real_fraction": real_fraction,
              "synthetic_class_mix": "match_real", "filter_policy": "combined", "keep_fraction": 1.0}
    with tracking.start_run(name or f"{model} ratio={ratio:g} s={seed}", params) as (m, run):
        m.log_metrics({"best_val_auc": best_val, "val_auc": best_val}
                      | {f"{ts}_{k}": v for ts in ("isic", "ham10000") for k, v in
                         {"auc": auc, "sensitivity": sens, "specificity": spec, "balanced_accuracy": (sens + spec) / 2,
                          "pauc80": 0.05, "accuracy": 0.7, "f1": 0.6}.items()})
        return run.info.run_id


def _utc_now() -> str:
    time.sleep(1.1)  # MLflow start times are in milliseconds: keep the boundary clear of them
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S.%f")


AUC = {(0.0, 1): 0.70, (0.0, 2): 0.74, (0.0, 3): 0.72, (0.5, 1): 0.61, (0.5, 2): 0.50, (0.5, 3): 0.66}


def test_metrics_by_ratio_is_mean_and_sd_over_seeds_of_one_study(repo, capsys):
    """`--by ratio` from a real MLflow store: an earlier study before --since stays out; per (model,
    ratio) the mean and SD over seeds, the same means `dermsynth report` computes; a seed that
    predicts every image benign and a validation AUROC below 0.5 are counted in the flags."""
    _log("m", 0.0, 1, 0.99)  # an earlier study's run
    since = _utc_now()
    for (ratio, seed), auc in AUC.items():
        one_class = (ratio, seed) == (0.5, 2)
        _log("m", ratio, seed, auc, sens=0.0 if one_class else 0.6, spec=1.0 if one_class else 0.7,
             best_val=0.4 if one_class else 0.8)
    main(["metrics", "--by", "ratio", "--since", since])
    out = capsys.readouterr().out
    _fits(out)
    parts = _sections(out)
    assert list(parts) == ["ISIC", "HAM10000"]
    for ratio in (0.0, 0.5):
        v = np.array([a for (r, _), a in AUC.items() if r == ratio])
        row = next(line for line in parts["ISIC"].splitlines() if re.match(rf"m\s+{ratio:g}\s", line))
        assert f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" in row and re.search(r"\s3\s", row)
    assert "m ratio 0.5: 1 of 3 runs predict every HAM10000 test image benign" in parts["HAM10000"]
    assert "m ratio 0.5: best validation AUROC below chance (0.5) in 1 of 3 runs (0.40)" in parts["ISIC"]
    assert "m ratio 0: " not in out
    assert out.strip().splitlines()[-1].startswith("6 MLflow runs; 1 left out")

    from dermsynth.runs import screen_runs
    from dermsynth.study_stats import summarise, tidy

    s = summarise(tidy(screen_runs(tracking.runs(), pd.Timestamp(since, tz="UTC"))[0]))
    main(["metrics", "--by", "ratio", "--since", since, "--json"])
    js = json.loads(capsys.readouterr().out)
    for row in next(t for t in js["testsets"] if t["testset"] == "isic")["rows"]:
        report_mean = s[(s.metric == "auc") & (s.testset == "isic") & (s.ratio == row["ratio"])]["mean"].item()
        assert row["metrics"]["auc"]["mean"] == pytest.approx(report_mean)
        assert row["seeds"] == ["1", "2", "3"]


def test_a_condition_the_study_varies_gets_tables_of_its_own(repo, capsys):
    """Runs at two real fractions are two conditions, never averaged together: one table each, named
    in its title as the ratio report names its sections, each within 120 characters."""
    for frac, level in ((1.0, 0.8), (0.25, 0.6)):
        for seed in (1, 2):
            _log("vit_tiny_patch16_224", 0.5, seed, level + seed / 100, real_fraction=frac)
    main(["metrics", "--by", "ratio"])
    out = capsys.readouterr().out
    _fits(out)
    titles = [line for line in out.splitlines() if " test set" in line]
    assert titles == [f"{ts} test set, real_fraction {f}: mean ± SD over seeds (one run: no SD)"
                      for ts in ("ISIC", "HAM10000") for f in ("0.25", "1")]
    assert "0.815 ± 0.007" in out and "0.615 ± 0.007" in out


def test_runs_lists_every_run_of_the_window_in_120_columns(repo, capsys):
    """`dermsynth runs`: finished and unfinished runs alike, one line each, oldest first, names cut to
    fit (the condition has its own columns); --since/--until choose the window."""
    import mlflow

    _log("m", 0.0, 1, 0.99)
    since = _utc_now()
    long = "x" * 90
    _log("vit_tiny_patch16_224", 0.75, 2, 0.612, real_fraction=0.25, name=long)
    client = mlflow.MlflowClient()
    client.create_run(tracking.experiment_id(), run_name="still running")  # its evaluate stage not done
    until = _utc_now()
    _log("m", 0.5, 3, 0.5)  # a later study's
    capsys.readouterr()
    main(["runs", "--since", since, "--until", until])
    out = capsys.readouterr().out
    _fits(out)
    lines = out.strip().splitlines()
    assert lines[0].split() == ["started", "name", "model", "ratio", "seed", "real", "class", "mix", "filter",
                                "status", "isic", "ham10000"]
    assert len(lines) == 4 and lines[-1].startswith("2 runs (1 finished)")
    first, second = lines[1], lines[2]
    assert "xxxx…" in first and long not in first
    condition = r"vit_tiny_patch16_224\s+0\.75\s+2\s+0\.25\s+match_real\s+combined 1\s+finished"
    assert re.search(condition + r"\s+0\.612\s+0\.612$", first), first
    assert "still running" in second and "running" in second.split()[-3:]
    main(["runs"])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("4 runs (3 finished)")


def test_since_without_by_ratio_is_refused(repo, capsys):
    _params(repo, ["m"])
    _write(repo, "m", _metrics(isic={}))
    with pytest.raises(SystemExit) as stop:
        main(["metrics", "--since", "2026-11-24"])
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip() == "ERROR: --since/--until choose MLflow runs: use them with --by ratio"


def test_help_of_the_commands_prints(capsys):
    """argparse %-formats help texts: a bare `%` (as in "95 % CI") would make `--help` a traceback."""
    for argv in (["--help"], ["metrics", "--help"], ["runs", "--help"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    assert "[95 % CI]" in " ".join(capsys.readouterr().out.split())  # however argparse wraps it


def test_the_ratio_report_says_identical_replicates_instead_of_a_zero_width_interval():
    import pandas as pd

    from dermsynth.study_markdown import _fmt_effect, _fmt_level

    same = pd.Series({"mean": 0.71, "ci95_low": 0.71, "ci95_high": 0.71, "replicates": 3})
    spread = pd.Series({"mean": 0.71, "ci95_low": 0.65, "ci95_high": 0.77, "replicates": 3})
    assert _fmt_level(same) == "0.710 (3 identical replicates)"
    assert _fmt_level(spread) == "0.710 [0.650, 0.770]"
    eff = pd.Series({"delta": 0.0, "delta_low": 0.0, "delta_high": 0.0, "p": float("nan"), "p_holm": float("nan")})
    assert _fmt_effect(eff) == "+0.000 (the same in every replicate)"
