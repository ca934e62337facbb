"""Ensembles of trained classifiers (`evaluate.ensembles`), evaluated like one more model.

An ensemble's score is the mean of its members' calibrated probabilities. Each member is calibrated
by Platt scaling on the validation split (a logistic regression on its score's logit, standardised
first, scikit-learn): members whose raw scores sit on different scales (a ViT's saturated softmax
against a CNN's timid one) then count alike, whatever their temperature (the standardisation makes the
calibrated probabilities the same for any affine change of a member's logit, so the regulariser does
not penalise a timid member), and the mean is a probability again. The ensemble's threshold is chosen on the same validation split
by the same rule as a model's (Youden's J, dermsynth.classify.evaluate.score_sets), so every test
metric, interval and subgroup table is that of a model; the validation split is used twice (to
calibrate and to choose the threshold), as a single model's threshold is chosen on it too.

Inputs are the evaluate stage's prediction files (reports/predictions/<model>{,_external,_val}.csv):
an ensemble never runs a network, so it re-computes in seconds whenever a member changes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from dermsynth.errors import UserError

METHOD = ("mean of the members' probabilities, each Platt-calibrated (logistic regression on its standardised score "
          "logit) on the validation split; threshold by Youden's J on the same split")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)  # a saturated softmax must stay finite
    return np.log(p / (1 - p))


def platt(y_val: np.ndarray, val_score: np.ndarray) -> Pipeline:
    """Platt scaling of one member, fitted on its validation scores (labels 1 = malignant)."""
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(_logit(val_score)[:, None],
                                                                     np.asarray(y_val).astype(int))


def calibrated(model: Pipeline, score: np.ndarray) -> np.ndarray:
    return model.predict_proba(_logit(score)[:, None])[:, 1]


def _aligned(frames: dict[str, pd.DataFrame], key: list[str], what: str) -> pd.DataFrame:
    """The members' rows side by side on `key` (the same images in the same order), or a UserError naming
    the member whose rows differ (prediction files of two different splits or test sets)."""
    names = list(frames)
    first = frames[names[0]]
    for n in names[1:]:
        other = frames[n]
        if len(other) != len(first) or not (other[key].to_numpy() == first[key].to_numpy()).all():
            raise UserError(f"ensemble: {n}'s {what} predictions are not of the same images as {names[0]}'s "
                            f"({len(other)} vs {len(first)} rows): re-run `dvc repro evaluate@{n}`")
    return first


def ensemble_scores(val: dict[str, pd.DataFrame], test: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ensemble's validation rows (image_id, label, score) and test rows (the prediction columns, score
    replaced by the ensemble's): members keyed by name, each with its validation and test predictions."""
    if len(val) < 2 or set(val) != set(test):
        raise UserError(f"ensemble: needs two or more members with validation and test predictions, got {sorted(val)}")
    base_val = _aligned(val, ["image_id", "label"], "validation")
    base_test = _aligned(test, ["testset", "image_id", "label"], "test")
    cal = {n: platt(v["label"].to_numpy(), v["score"].to_numpy()) for n, v in val.items()}
    val_out = base_val[["image_id", "label"]].copy()
    val_out["score"] = np.mean([calibrated(cal[n], val[n]["score"]) for n in val], axis=0)
    test_out = base_test.drop(columns=["pred"]).copy()
    test_out["score"] = np.mean([calibrated(cal[n], test[n]["score"]) for n in val], axis=0)
    return val_out, test_out


def evaluate_ensemble(val: dict[str, pd.DataFrame], test: dict[str, pd.DataFrame], n_boot: int,
                      seed: int) -> tuple[pd.DataFrame, dict]:
    """Predictions (the columns of reports/predictions/<model>.csv) and the flat metrics dict of a model,
    plus `members` and `method`."""
    from dermsynth.classify.evaluate import score_sets

    val_rows, test_rows = ensemble_scores(val, test)
    named = test_rows.assign(label=np.where(test_rows["label"] == 1, "malignant", "benign"))
    sets = {ts: (g, g["score"].to_numpy()) for ts, g in named.groupby("testset", sort=False)}
    pred, metrics = score_sets(val_rows["label"].to_numpy(), val_rows["score"].to_numpy(), sets, n_boot, seed)
    return pred, metrics | {"members": list(val), "method": METHOD}
