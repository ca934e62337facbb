"""Ensembles (evaluate.ensembles): the mean of the members' calibrated probabilities, evaluated like a model."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score,
                             roc_curve)

from dermsynth.classify.ensemble import METHOD, evaluate_ensemble
from dermsynth.errors import UserError


def _member(rng: np.random.Generator, y_val: np.ndarray, y_test: np.ndarray, sets: list[str], scale: float,
            shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores that carry the label, on a member's own scale (a saturating softmax or a timid one)."""
    def scores(y):
        return 1 / (1 + np.exp(-(scale * (y + rng.normal(0, 0.8, len(y))) + shift)))
    val = pd.DataFrame({"image_id": [f"v{i}" for i in range(len(y_val))], "label": y_val, "score": scores(y_val)})
    s = scores(y_test)
    test = pd.DataFrame({"image_id": [f"t{i}" for i in range(len(y_test))], "testset": sets, "label": y_test,
                         "score": s, "pred": (s >= 0.5).astype(int), "source": "isic2019"})
    return val, test


def _two_members(seed: int = 0):
    rng = np.random.default_rng(seed)
    y_val = rng.integers(0, 2, 80)
    y_test = rng.integers(0, 2, 120)
    sets = ["isic"] * 70 + ["ham10000"] * 50
    a = _member(rng, y_val, y_test, sets, scale=6.0, shift=-2.0)
    b = _member(rng, y_val, y_test, sets, scale=0.7, shift=0.3)
    return {"vit": a[0], "cnn": b[0]}, {"vit": a[1], "cnn": b[1]}


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def test_metrics_are_scikit_learns_on_the_averaged_calibrated_scores():
    val, test = _two_members()
    pred, metrics = evaluate_ensemble(val, test, n_boot=50, seed=0)
    # the same computation written out with scikit-learn alone
    cal = {m: make_pipeline(StandardScaler(), LogisticRegression()).fit(_logit(val[m].score.to_numpy())[:, None],
                                                                         val[m].label) for m in val}
    mean = lambda frames: np.mean([cal[m].predict_proba(_logit(frames[m].score.to_numpy())[:, None])[:, 1]  # noqa: E731
                                   for m in val], axis=0)
    v, t = mean(val), mean(test)
    fpr, tpr, thr = roc_curve(val["vit"].label, v)
    threshold = min(thr[np.argmax(tpr - fpr)], 1.0)
    assert metrics["threshold"] == pytest.approx(threshold)
    assert np.allclose(pred.score.to_numpy(), t)
    for ts in ("isic", "ham10000"):
        rows = (test["vit"].testset == ts).to_numpy()
        y, s = test["vit"].label.to_numpy()[rows], t[rows]
        hard = (s >= threshold).astype(int)
        assert metrics[f"{ts}_auc"] == pytest.approx(roc_auc_score(y, s))
        assert metrics[f"{ts}_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, hard))
        assert metrics[f"{ts}_sensitivity"] == pytest.approx(recall_score(y, hard))
        assert metrics[f"{ts}_specificity"] == pytest.approx(recall_score(1 - y, 1 - hard))
        assert metrics[f"{ts}_f1"] == pytest.approx(f1_score(y, hard))
        assert metrics[f"{ts}_accuracy"] == pytest.approx(accuracy_score(y, hard))
        assert metrics[f"{ts}_n"] == rows.sum() and len(metrics[f"{ts}_auc_ci95"]) == 2
    assert metrics["members"] == ["vit", "cnn"] and metrics["method"] == METHOD
    assert list(pred.columns) == ["image_id", "testset", "label", "score", "pred", "source"]


def test_calibration_lets_a_timid_member_count():
    """Raw averaging lets the member with the widest score range decide; calibrated averaging does not:
    a timid member (scores near 0.5) that ranks perfectly lifts the ensemble above the loud noisy one."""
    rng = np.random.default_rng(3)
    y_val, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    ids_v, ids_t = [f"v{i}" for i in range(200)], [f"t{i}" for i in range(200)]

    def frames(y_v, y_t, fn):
        sv, st = fn(y_v), fn(y_t)
        return (pd.DataFrame({"image_id": ids_v, "label": y_v, "score": sv}),
                pd.DataFrame({"image_id": ids_t, "testset": "isic", "label": y_t, "score": st, "pred": 0,
                              "source": "isic2019"}))
    loud = frames(y_val, y_test, lambda y: np.clip(0.5 + 0.45 * np.sign(rng.normal(0, 1, len(y)) + 0.3 * (2 * y - 1)),
                                                   0, 1))
    timid = frames(y_val, y_test, lambda y: 0.5 + 0.01 * (2 * y - 1) + rng.normal(0, 0.004, len(y)))
    _, metrics = evaluate_ensemble({"loud": loud[0], "timid": timid[0]}, {"loud": loud[1], "timid": timid[1]}, 20, 0)
    raw = (loud[1].score + timid[1].score) / 2
    assert metrics["isic_auc"] > roc_auc_score(y_test, raw) + 0.1


def test_a_members_temperature_does_not_change_the_ensemble():
    """The same member at another softmax temperature (its logit times 3, plus 1) gives the same ensemble."""
    val, test = _two_members(1)
    _, before = evaluate_ensemble(val, test, 20, 0)
    hot = lambda s: 1 / (1 + np.exp(-(3 * _logit(s) + 1)))  # noqa: E731
    val["cnn"] = val["cnn"].assign(score=hot(val["cnn"].score))
    test["cnn"] = test["cnn"].assign(score=hot(test["cnn"].score))
    _, after = evaluate_ensemble(val, test, 20, 0)
    assert after["threshold"] == pytest.approx(before["threshold"], abs=1e-9)
    assert all(after[k] == pytest.approx(before[k], abs=1e-9) for k in before if isinstance(before[k], float))


def test_members_of_different_images_are_refused_by_name():
    val, test = _two_members()
    test["cnn"] = test["cnn"].iloc[::-1].reset_index(drop=True)
    with pytest.raises(UserError, match=r"cnn's test predictions are not of the same images as vit's.*evaluate@cnn"):
        evaluate_ensemble(val, test, 10, 0)
    with pytest.raises(UserError, match="two or more members"):
        evaluate_ensemble({"vit": val["vit"]}, {"vit": test["vit"]}, 10, 0)


def _model_dir(root, name: str, ratio: float, weights: bytes):
    d = root / name
    d.mkdir()
    (d / "model.safetensors").write_bytes(weights)
    (d / "run.json").write_text(json.dumps({"name": f"{name} ratio={ratio:g} s=1", "params": {
        "ratio": ratio, "model": name, "seed": 1, "data_seed": 42, "real_fraction": 1.0,
        "synthetic_class_mix": "match_real", "pool": "synthetic", "filter_policy": "combined", "keep_fraction": 1.0}}))
    return d


def test_an_ensemble_has_one_mlflow_run_placed_like_a_model(tmp_path, monkeypatch):
    from dermsynth import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    members = {"vit": _model_dir(tmp_path, "vit", 0.5, b"a"), "cnn": _model_dir(tmp_path, "cnn", 0.5, b"b")}
    art = tmp_path / "all.json"
    art.write_text("{}")
    run_id, made = tracking.ensemble_run("all", members, METHOD, {"isic_auc": 0.7}, [art])
    again, made_again = tracking.ensemble_run("all", members, METHOD, {"isic_auc": 0.7}, [art])
    assert made and not made_again and again == run_id
    runs = tracking.runs()
    assert len(runs) == 1
    r = runs.iloc[0]
    # the study report groups runs by these: the ensemble is one more model of the same condition
    assert r["params.model"] == "all" and r["params.ratio"] == "0.5" and r["params.seed"] == "1"
    assert r["params.ensemble_members"] == "vit,cnn" and r["metrics.isic_auc"] == 0.7
    # new member weights: a new condition, a new run
    (members["cnn"] / "model.safetensors").write_bytes(b"c")
    assert tracking.ensemble_run("all", members, METHOD, {"isic_auc": 0.6}, [])[1]
    other = {"vit": members["vit"], "cnn3": _model_dir(tmp_path, "cnn3", 0.75, b"d")}
    with pytest.raises(UserError, match=r"ensemble all: its members were trained under different conditions \(ratio\)"):
        tracking.ensemble_run("all", other, METHOD, {}, [])
