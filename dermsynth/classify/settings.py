"""One classifier's training settings, resolved from the validated params: the `train` block, that
model's entry in `train.overrides` (if it has one) on top, `img_size: 0` as the prepared images' side.

The train stage runs with exactly this, and the `train_config@<model>` stage writes it to a file that
`train@<model>` depends on: a change to the block re-runs only the models whose settings it changes,
and a model added to `train.models` needs no overrides entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dermsynth.contracts import model_slug

# keys of the train block that are not one model's settings
NOT_SETTINGS = ("models", "overrides")


def model_settings(params: dict[str, Any], name: str, prepared_size: int) -> dict[str, Any]:
    """{"train": TrainConfig fields, "mixing": MixConfig fields, "processes": n} for model `name`;
    `prepared_size` is the prepared images' side (dermsynth.config.prepared_size)."""
    t = {k: v for k, v in params["train"].items() if k not in NOT_SETTINGS}
    t |= params["train"]["overrides"].get(name, {})
    mixing = {**t.pop("mixing"), "real_fraction": float(t.pop("real_fraction"))}
    processes = t.pop("processes")
    t["img_size"] = t["img_size"] or prepared_size  # 0 = the prepared images' side
    return {"train": {**t, "model": name, "seed": params["seed"]}, "mixing": mixing, "processes": processes}


def settings_file(reports: str | Path, name: str) -> Path:
    """reports/train_config/<model>.json: what train_config@<model> writes and train@<model> reads."""
    return Path(reports) / "train_config" / f"{model_slug(name)}.json"
