"""`train.schedule: synthetic_then_real`: the synthetic part first, then fine-tuning on the real part (UFPE)."""
from dataclasses import replace

import pandas as pd
import pytest

from dermsynth import tracking
from dermsynth.classify.train import TrainConfig, train_classifier, training_phases
from dermsynth.errors import UserValueError

CFG = TrainConfig(model="resnet18", img_size=32, epochs=3, batch_size=16, threads=2, seed=0, lr=1e-3,
                  schedule="synthetic_then_real", pretrain_epochs=2, finetune_lr=1e-4)


def _table(n_real: int, n_slots: int, slot_origin: str = "synthetic") -> pd.DataFrame:
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n_real + n_slots)], "path": "x.png", "label": "benign",
                         "origin": ["real"] * n_real + [slot_origin] * n_slots})


def test_phase_lengths_and_learning_rates():
    (p1, rows1, c1), (p2, rows2, c2) = training_phases(_table(5, 3), CFG)
    assert (p1, len(rows1), c1.epochs, c1.lr) == ("synthetic", 3, 2, 1e-3)
    assert (p2, len(rows2), c2.epochs, c2.lr) == ("real", 5, 3, 1e-4)
    assert set(rows1.origin) == {"synthetic"} and set(rows2.origin) == {"real"}
    # the control arm's slots (held-out real images) are the first phase too: the schedule compares like with like
    assert training_phases(_table(5, 3, "held_out_real"), CFG)[0][0:2][1].origin.eq("held_out_real").all()
    # no synthetic image (ratio 0): plain training on the real images, the baseline both schedules share
    [(p, rows, c)] = training_phases(_table(5, 0), CFG)
    assert (p, len(rows), c.epochs, c.lr) == ("real", 5, 3, 1e-3)
    # mixed: one phase on everything, the config untouched
    [(p, rows, c)] = training_phases(_table(5, 3), replace(CFG, schedule="mixed"))
    assert (p, len(rows), c) == ("mixed", 8, replace(CFG, schedule="mixed"))
    with pytest.raises(UserValueError, match="no `origin` column"):
        training_phases(_table(5, 3).drop(columns="origin"), CFG)


def test_two_phases_in_one_mlflow_run(prepared_session, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    root, m = prepared_session
    train = m[m.split == "train"]
    # half the real training images stand in for the synthetic part: the schedule reads only `origin`
    train = train.assign(origin=["synthetic" if k % 2 else "real" for k in range(len(train))])
    cfg = replace(CFG, epochs=2, pretrain_epochs=2, early_stopping_patience=5)
    steps = []
    with tracking.start_run("schedule", {"ratio": 0.5, "model": cfg.model, "seed": 0}) as (mlflow, run):
        summary = train_classifier(train, m[m.split == "val"], cfg, tmp_path / "clf", root=root,
                                   on_epoch=lambda e, row: (steps.append(e), mlflow.log_metrics(row, step=e)))
        run_id = run.info.run_id
    history = pd.read_csv(tmp_path / "clf/history.csv")
    assert list(history.phase) == ["synthetic", "synthetic", "real", "real"] and list(history.epoch) == [1, 2, 3, 4]
    assert steps == [1, 2, 3, 4] and summary["epochs_per_phase"] == {"synthetic": 2, "real": 2}
    # each phase warms up to its own peak: the real phase's rates are the fine-tuning rate's scale
    assert cfg.finetune_lr < history.lr[0] <= cfg.lr and history.lr[2:].max() <= cfg.finetune_lr
    # the best epoch is one of the real phase's: the synthetic phase hands its last weights on
    assert summary["best_epoch"] in (3, 4) and (tmp_path / "clf/model.safetensors").is_file()
    curve = tracking._mlflow().MlflowClient().get_metric_history(run_id, "val_auc")
    assert sorted(p.step for p in curve) == [1, 2, 3, 4]


def test_the_study_keeps_schedules_apart_as_conditions():
    """The report groups runs by model: a synthetic-then-real run is its own line, beside the mixed one, and
    a run from before the schedule existed is mixed."""
    from dermsynth.run_tables import condition
    from dermsynth.study_stats import tidy

    from dermsynth.testset_names import TESTSET_MARKERS

    metrics = {f"metrics.isic_{m}": 0.5 for m in TESTSET_MARKERS}
    runs = pd.DataFrame([
        {"run_id": "a", "params.model": "resnet18", "params.ratio": "0.5", "params.seed": "1",
         "params.schedule": "synthetic_then_real", **metrics, "metrics.isic_auc": 0.7},
        {"run_id": "b", "params.model": "resnet18", "params.ratio": "0.5", "params.seed": "1",
         "params.schedule": "mixed", **metrics, "metrics.isic_auc": 0.6},
        {"run_id": "c", "params.model": "resnet18", "params.ratio": "0.5", "params.seed": "1",
         **metrics}])
    t = tidy(runs)
    t = t[t.metric == "auc"]
    # c, from before the schedule existed, is mixed: the same cell as b, which (newer) supersedes it
    assert dict(zip(t.run_id, t.model)) == {"a": "resnet18 (synthetic_then_real)", "b": "resnet18"}
    assert condition(runs.iloc[0])["model"] == "resnet18 (synthetic_then_real)"
