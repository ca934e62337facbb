"""Stage params: params.yaml against the schema before any other stage runs.

DVC removes a stage's outputs right before it runs that stage, and every stage lies downstream of
this one (through ingest), so a typo or a bad value (`dvc exp run -S train.epoch=5`, `-S ratio=75`,
`-S paths.prepared=configs`) stops here, with every output still in place. Its output never changes,
so passing it re-runs nothing downstream.
"""
import logging
from pathlib import Path

from dermsynth.config import configure_environment, load_params
from dermsynth.errors import UserError, UserValueError
from dermsynth.params import ParamsError, check_model_names, unused_overrides
from dermsynth.traits import check_attributes
from stages._common import fail

OUT = Path("reports/params_check.txt")
HINT = ("params.yaml keeps what was written into it (`dvc exp run -S` writes before it runs): correct it, "
        "or `git checkout params.yaml`; no output was removed")


def main() -> None:
    configure_environment()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params()
        check_model_names(params)
        check_attributes(params["generate"]["attributes"])  # the traits' vocabularies live beside the data
    except (ParamsError, UserValueError) as e:
        fail(UserError(f"{e}\n{HINT}"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("params.yaml passed the schema of dermsynth/params\n")
    for line in unused_overrides(params):
        print(f"WARNING: {line}")
    print("params.yaml: valid")


if __name__ == "__main__":
    main()
