"""Stage external: each external test set (evaluate.external) read in its own layout, checked and preprocessed
like the training data -> <paths.testsets>/<name>/, reports/external.json, reports/external_quarantine.csv."""
import json
from pathlib import Path

import pandas as pd

from dermsynth.contracts import QUARANTINE_COLUMNS
from dermsynth.data.preprocess import prep_config
from dermsynth.data.sources.isic_archive import ArchivePolicy
from dermsynth.data.testsets import prepare_external, summarise
from dermsynth.errors import UserFileError
from dermsynth.files import write_json
from dermsynth.paths import replace_output_dir
from stages._common import main


def run(params: dict) -> None:
    paths, ing, p = params["paths"], params["ingest"], params["prepare"]
    cfg = prep_config(p)
    out = replace_output_dir(paths["testsets"], "paths.testsets")  # a removed set must not linger
    prepared = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False, dtype=str)
    summary, quarantines = {}, []
    for name, s in params["evaluate"]["external"].items():
        manifest, quarantine = prepare_external(
            name, s["layout"], s["path"], paths["raw"], out, Path("."), cfg, prepared, p["phash_distance"],
            ing["min_size"], ing["max_image_bytes"], ing["max_pixels"], p["workers"], ArchivePolicy.from_params(ing))
        quarantines.append(quarantine)
        summary[name] = summarise(manifest, quarantine, s["layout"])
        if manifest.empty:
            raise UserFileError(f"evaluate.external.{name}: no usable image ({len(quarantine)} quarantined: "
                                f"{summary[name]['quarantined']}); see reports/external_quarantine.csv")
        (out / name).mkdir(exist_ok=True)
        manifest.to_csv(out / name / "manifest.csv", index=False)
        print(f"external {name}: {json.dumps(summary[name])}")
    reports = Path(paths["reports"])
    reports.mkdir(parents=True, exist_ok=True)
    every = pd.concat(quarantines, ignore_index=True) if quarantines else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    every.to_csv(reports / "external_quarantine.csv", index=False)
    write_json((reports / "external.json"), summary)


if __name__ == "__main__":
    main(run)
