"""One-epoch training on tiny images, evaluation outputs, and MLflow logging to a temporary store."""
import numpy as np
import pandas as pd
import pytest
import torch

from dermsynth.classify.evaluate import evaluate_model, gradcam_grid, split_test_sets
from dermsynth.classify.metrics import METRICS
from dermsynth.classify.models import create_classifier, gradcam_target_layer
from dermsynth.classify.loop import amp_dtype
from dermsynth.classify.train import TrainConfig, load_classifier, train_classifier, transforms
from dermsynth import tracking
from dermsynth.contracts import PREDICTION_COLUMNS, VAL_PREDICTION_COLUMNS


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    return tmp_path


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "mobilenetv2_100", "resnet18"])
def test_any_timm_model_by_name(name):
    m = create_classifier(name, img_size=32)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 2)
    layer, is_vit = gradcam_target_layer(m)
    assert is_vit == name.startswith("vit")


def test_pretrained_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = create_classifier("resnet18", 32)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}  # a backbone without our head
    save_file(sd, tmp_path / "resnet18.safetensors")
    m = create_classifier("resnet18", 32, pretrained_file=str(tmp_path / "resnet18.safetensors"))
    assert torch.equal(m.conv1.weight, src.conv1.weight)
    with pytest.raises(FileNotFoundError):
        create_classifier("resnet18", 32, pretrained_file=str(tmp_path / "missing.pth"))


def test_one_epoch_training_and_evaluation(prepared_session, tmp_path, mlflow_store):
    root, m = prepared_session
    cfg = TrainConfig(model="resnet18", img_size=32, epochs=1, batch_size=16, threads=2, seed=0)
    train = m[m.split == "train"].assign(origin="real")
    epochs = []
    with tracking.start_run("test", {"ratio": 0.0, "model": cfg.model, "seed": 0}) as (mlflow, run):
        summary = train_classifier(train, m[m.split == "val"], cfg, tmp_path / "clf", root=root,
                                   on_epoch=lambda e, row: (epochs.append(row), mlflow.log_metrics(row, step=e)))
        run_id = run.info.run_id
    assert summary["epochs_run"] == 1 and (tmp_path / "clf/model.safetensors").is_file()
    assert np.isfinite(epochs[0]["train_loss"]) and epochs[0]["images_per_second"] > 0
    model = load_classifier(tmp_path / "clf", cfg)
    _, t_eval = transforms(model, cfg)
    pred, metrics, val_pred = evaluate_model(model, t_eval, m, n_boot=50, seed=0, root=root)
    assert list(pred.columns[:5]) == PREDICTION_COLUMNS and set(pred.testset) == set(split_test_sets(m))
    assert len(pred) == (m.split == "test").sum()
    for ts in split_test_sets(m):
        for k in METRICS:
            assert f"{ts}_{k}" in metrics and f"{ts}_{k}_ci95" in metrics
    # every metric can be recomputed from the predictions file alone
    from dermsynth.classify.metrics import binary_metrics

    g = pred[pred.testset == "isic"]
    again = binary_metrics(g.label, g.score, metrics["threshold"])
    assert all(again[k] == pytest.approx(metrics[f"isic_{k}"], nan_ok=True) for k in METRICS)
    # and the threshold from the validation predictions written beside them (Youden's J)
    from dermsynth.classify.metrics import youden_threshold

    assert list(val_pred.columns) == VAL_PREDICTION_COLUMNS and len(val_pred) == (m.split == "val").sum()
    assert youden_threshold(val_pred.label, val_pred.score) == metrics["threshold"]
    with tracking.start_run("test", {}, run_id=run_id) as (mlflow, _):
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
    gradcam_grid(model, t_eval, m[m.split == "test"].head(4), tmp_path / "cam.png", root=root)
    assert (tmp_path / "cam.png").stat().st_size > 1000
    runs = tracking.runs()
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["params.ratio"] == "0.0" and r["params.model"] == "resnet18" and r["tags.dvc_exp_name"] == "exp-test"
    assert "metrics.isic_auc" in runs.columns and "metrics.val_auc" in runs.columns


def test_default_tracking_store_is_under_the_dvc_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    tracking.experiment_id()
    import mlflow

    exp = mlflow.get_experiment_by_name("dermsynth")
    assert exp.artifact_location == (tmp_path / "mlruns").as_uri()
    # `mlflow ui` opens a model-development experiment on its runs, not on the empty GenAI traces page
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_mixed_precision_is_what_was_asked(prepared_session, tmp_path):
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("no", cpu) is None
    assert amp_dtype("fp16", cpu) == torch.float16 and amp_dtype("bf16", cpu) == torch.bfloat16
    assert amp_dtype("auto", torch.device("cuda")) == torch.bfloat16
    root, m = prepared_session  # fp16 with loss scaling trains (it used to run fp32 silently)
    cfg = TrainConfig(model="resnet18", img_size=32, epochs=1, batch_size=16, threads=2, seed=0, mixed_precision="fp16")
    summary = train_classifier(m[m.split == "train"].assign(origin="real"), m[m.split == "val"], cfg, tmp_path / "c",
                               root=root)
    assert summary["epochs_run"] == 1


def test_vit_gradcam(prepared_session, tmp_path):
    root, m = prepared_session
    model = create_classifier("vit_tiny_patch16_224", 32)
    cfg = TrainConfig(model="vit_tiny_patch16_224", img_size=32)
    _, t_eval = transforms(model, cfg)
    gradcam_grid(model, t_eval, m.head(2), tmp_path / "vit_cam.png", root=root)
    assert (tmp_path / "vit_cam.png").is_file()


def _log_runs(values, **params):
    """One finished MLflow run per (ratio, seed) with every isic metric from `values(ratio, seed, metric)`."""
    for (ratio, seed) in values.keys():
        with tracking.start_run("r", {"ratio": ratio, "model": "m", "seed": seed, **params}) as (mlflow, _):
            mlflow.log_metrics({f"isic_{k}": values[(ratio, seed)](k) for k in METRICS})


def test_ratio_report_pairs_seeds(tmp_path, mlflow_store):
    from dermsynth.report import write_report

    rng = np.random.default_rng(0)
    _log_runs({(ratio, seed): (lambda k, r=ratio, s=seed: (0.14 if k == "pauc80" else 0.7) + 0.1 * r + 0.01 * s
                               + rng.normal(0, 0.001))
               for ratio in (0.0, 0.5) for seed in (1, 2, 3)}, data_seed=42, real_fraction=1.0,
              synthetic_class_mix="match_real")
    s = write_report(tracking.runs(), tmp_path / "rep")
    auc = s[(s.metric == "auc") & (s.ratio == 0.5)].iloc[0]
    assert auc.replicates == 3 and auc.delta == pytest.approx(0.05, abs=0.003)
    assert auc.delta_low < 0.05 < auc.delta_high and auc.d_z > 5
    assert auc.p < 0.01 and auc.p <= auc.p_holm <= 1 and auc.ci95_low < auc["mean"] < auc.ci95_high
    # Holm over the family of 7 tests: the adjusted p-values are what statsmodels gives
    from statsmodels.stats.multitest import multipletests

    tested = s[s.p.notna()]
    assert len(tested) == 7 and np.allclose(tested.p_holm, multipletests(tested.p, method="holm")[1])
    md = (tmp_path / "rep/ratio_sweep.md").read_text()
    assert "Ratio study" in md and "data_seed fixed at 42" in md and "Holm" in md
    assert (tmp_path / "rep/ratio_sweep.png").stat().st_size > 5000 and (tmp_path / "rep/ratio_grid.png").is_file()


def test_report_command_keeps_one_study_between_since_and_until(tmp_path, mlflow_store):
    """The MLflow store keeps every study ever run; --since/--until pick one by its runs' start times."""
    import time

    from dermsynth.cli import main

    def study(level: float) -> None:
        _log_runs({(r, s): (lambda k, r=r, s=s: level + 0.1 * r + 0.01 * s) for r in (0.0, 0.5) for s in (1, 2, 3)},
                  data_seed=42, real_fraction=1.0, synthetic_class_mix="match_real")

    def utc_now() -> str:
        time.sleep(1.1)  # MLflow start times are in milliseconds; keep the boundaries clear of them
        return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S.%f")

    study(0.5)
    first_end = utc_now()
    study(0.7)
    second_end = utc_now()
    study(0.2)
    main(["report", "--out", str(tmp_path / "mid"), "--since", first_end, "--until", second_end])
    main(["report", "--out", str(tmp_path / "all")])
    mid = pd.read_csv(tmp_path / "mid/ratio_sweep.csv")
    auc0 = mid[(mid.metric == "auc") & (mid.ratio == 0.0)].iloc[0]
    assert auc0.replicates == 3 and auc0["mean"] == pytest.approx(0.72)  # the second study alone
    assert pd.read_csv(tmp_path / "mid/ratio_sweep_runs.csv").run_id.nunique() == 6
    # without bounds a repeated condition counts once, by its newest run: the third study
    every = pd.read_csv(tmp_path / "all/ratio_sweep.csv")
    assert every[(every.metric == "auc") & (every.ratio == 0.0)].iloc[0]["mean"] == pytest.approx(0.22)


def test_report_intervals_stay_in_range_and_need_three_replicates(tmp_path, mlflow_store):
    """Two wildly different seeds: a plain t-interval would be [-1.2, 2.5]; the report shows none and says why."""
    from dermsynth.report import write_report
    from dermsynth.study_stats import bounded_interval

    _log_runs({(r, s): (lambda k, s=s: 0.05 if s == 1 else 0.95) for r in (0.0, 1.0) for s in (1, 2)})
    s = write_report(tracking.runs(), tmp_path / "rep")
    assert s.ci95_low.isna().all() and s.delta_low.isna().all()
    assert "**No intervals**" in (tmp_path / "rep/ratio_sweep.md").read_text()
    assert "balanced" in s.synthetic_class_mix.unique()  # runs without the param drew 50/50
    rng = np.random.default_rng(1)
    for metric_hi in (1.0, 0.2):
        for _ in range(50):
            x = rng.uniform(0, metric_hi, rng.integers(3, 6))
            lo, hi = bounded_interval(x, 0.0, metric_hi)
            assert 0.0 <= lo <= hi <= metric_hi
    assert bounded_interval(np.array([1.0, 1.0, 1.0]), 0, 1)[1] <= 1.0


def test_report_pairs_on_data_seed_too_and_draws_the_real_fraction_grid(tmp_path, mlflow_store):
    from dermsynth.report import write_report

    for frac in (0.25, 1.0):
        _log_runs({(r, 7): (lambda k, r=r, f=frac: 0.5 + 0.2 * f + 0.1 * r) for r in (0.0, 0.5)}, data_seed=1,
                  real_fraction=frac, synthetic_class_mix="match_real")
    _log_runs({(0.0, 7): (lambda k: 0.6)}, data_seed=2, real_fraction=1.0, synthetic_class_mix="match_real")
    s = write_report(tracking.runs(), tmp_path / "rep")
    row = s[(s.metric == "auc") & (s.ratio == 0.5) & (s.real_fraction == 1.0)].iloc[0]
    assert row.effect_pairs == 1  # the data_seed=2 run has no partner at ratio 0.5
    assert "data seeds varied: 1, 2" in (tmp_path / "rep/ratio_sweep.md").read_text()
    grid = (tmp_path / "rep/ratio_grid.md").read_text()
    assert "0.25" in grid and (tmp_path / "rep/ratio_grid.png").stat().st_size > 5000


def test_report_tracks_the_subgroup_gap_and_keeps_filtered_runs_apart(tmp_path, mlflow_store):
    """Filtered and unfiltered runs at the same ratio are two conditions; the AUROC gap between patient
    groups is a metric of its own, paired against ratio 0 (here synthetic images halve it)."""
    from dermsynth.report import write_report

    for keep in (1.0, 0.8):
        for ratio in (0.0, 0.5):
            for seed in (1, 2, 3):
                with tracking.start_run("r", {"ratio": ratio, "model": "m", "seed": seed, "data_seed": 1,
                                              "synthetic_class_mix": "match_real", "filter_policy": "combined",
                                              "keep_fraction": keep}) as (mlflow, _):
                    mlflow.log_metrics({**{f"isic_{k}": 0.7 + 0.05 * keep + 0.001 * seed for k in METRICS},
                                        "isic_auc_gap_skin_tone": (0.2 - 0.2 * ratio) + 0.002 * seed})
    s = write_report(tracking.runs(), tmp_path / "rep")
    assert set(s["filter"]) == {"combined 1", "combined 0.8"}
    auc = s[(s.metric == "auc") & (s.ratio == 0.5)].set_index("filter")["mean"]
    assert auc["combined 0.8"] == pytest.approx(0.742) and auc["combined 1"] == pytest.approx(0.752)
    gap = s[(s.metric == "auc_gap_skin_tone") & (s.ratio == 0.5) & (s["filter"] == "combined 1")].iloc[0]
    assert gap.delta == pytest.approx(-0.1) and gap.replicates == 3
    md = (tmp_path / "rep/ratio_sweep.md").read_text()
    assert "filter combined 0.8" in md and "AUROC gap between the best and the worst patient group" in md
    assert (tmp_path / "rep/subgroup_gap.png").stat().st_size > 5000


def test_training_is_reproducible(prepared_session, tmp_path):
    from safetensors.torch import load_file

    root, m = prepared_session
    cfg = TrainConfig(model="resnet18", img_size=32, epochs=1, batch_size=16, threads=2, seed=3)
    train = m[m.split == "train"]
    for out in ("a", "b"):
        train_classifier(train, m[m.split == "val"], cfg, tmp_path / out, root=root)
    a, b = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_committed_demo_study_is_what_the_report_computes_from_its_runs():
    """reports/ratio_sweep.csv is summarise() of the committed per-run values (exported from MLflow by `dermsynth report`)."""
    from pathlib import Path

    import pandas as pd

    from dermsynth.study_stats import summarise

    rep = Path(__file__).resolve().parents[2] / "reports"
    runs = pd.read_csv(rep / "ratio_sweep_runs.csv", dtype={"data_seed": str})
    committed = pd.read_csv(rep / "ratio_sweep.csv")
    again = summarise(runs).round(6)
    assert len(again) == len(committed) and runs.run_id.nunique() >= 60
    key = ["model", "testset", "metric", "synthetic_class_mix", "real_fraction", "ratio"]
    a, b = again.sort_values(key).reset_index(drop=True), committed.sort_values(key).reset_index(drop=True)
    for col in ("mean", "ci95_low", "ci95_high", "delta", "p", "p_holm"):
        assert np.allclose(a[col], b[col], atol=1e-6, equal_nan=True), col
    assert set(committed.replicates) >= {3} and ((committed.ci95_low >= 0) | committed.ci95_low.isna()).all()


def test_evaluation_finds_the_run_of_its_own_experiment_when_two_trained_the_same_weights(tmp_path, mlflow_store,
                                                                                         monkeypatch):
    """Ratio 0 under two filter settings trains identical weights; queued side by side, each experiment's
    evaluation must complete its own run, not the newest run with those weights."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"the same weights")
    ids = {}
    for name in ("exp-a", "exp-b"):  # exp-b trains second: the newest run with these weights
        monkeypatch.setenv("DVC_EXP_NAME", name)
        with tracking.start_run(name, {"ratio": 0.0}) as (mlflow, run):
            mlflow.set_tag(tracking.MODEL_TAG, tracking.model_digest(model))
            ids[name] = run.info.run_id
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    assert tracking.find_model_run(model) == ids["exp-a"]
    monkeypatch.delenv("DVC_EXP_NAME")  # plain `dvc repro`: the newest
    assert tracking.find_model_run(model) == ids["exp-b"]
    monkeypatch.setenv("DVC_EXP_NAME", "exp-unknown")
    assert tracking.find_model_run(model) == ids["exp-b"]
