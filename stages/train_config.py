"""Stage train_config@<model>: the model's resolved training settings as one file.

It re-runs on any change to the train block, the classifier seed or the prepared set's recorded
config (its size), but its file changes only when this model's settings do; `train@<model>` reads
the file and depends on it, not on the keys."""
import argparse

from dermsynth.classify.settings import model_settings, settings_file
from dermsynth.config import prepared_size
from dermsynth.files import write_json
from stages._common import main


def run(params: dict) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    name = ap.parse_args().model
    out = settings_file(params["paths"]["reports"], name)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, model_settings(params, name, prepared_size(params["paths"]["prepared"])), sort_keys=True)
    print(f"{name}: {out}")


if __name__ == "__main__":
    main(run)
