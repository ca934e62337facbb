"""Stage ingest: data/raw -> data/interim/manifest.csv + reports/{quarantine,duplicates}.csv."""
import json
from dataclasses import asdict
from pathlib import Path

from dermsynth.data.ingest import UnrecognisedFolderError, check_usable, format_summary, ingest
from dermsynth.data.sources.isic_archive import ArchivePolicy
from dermsynth.files import write_json
from stages._common import main


def run(params: dict) -> None:
    p, paths = params["ingest"], params["paths"]
    Path(paths["reports"]).mkdir(parents=True, exist_ok=True)
    report = Path(paths["reports"]) / "ingest.json"
    try:
        result = ingest(paths["raw"], min_size=p["min_size"], workers=p["workers"],
                        source_priority=p["source_priority"], max_image_bytes=p["max_image_bytes"],
                        max_pixels=p["max_pixels"], archive=ArchivePolicy.from_params(p))
    except UnrecognisedFolderError as e:
        # the report names the folders too (the stage stops before anything is read)
        report.write_text(json.dumps({"error": str(e), "unrecognised_folders": [asdict(u) for u in e.folders]},
                                     indent=2) + "\n")
        raise
    Path(paths["interim"]).mkdir(parents=True, exist_ok=True)
    result.manifest.to_csv(Path(paths["interim"]) / "manifest.csv", index=False)
    result.quarantine.to_csv(Path(paths["reports"]) / "quarantine.csv", index=False)
    result.duplicates.to_csv(Path(paths["reports"]) / "duplicates.csv", index=False)
    summary = result.summary()
    write_json(report, summary)
    print(format_summary(summary))
    check_usable(result, p["max_quarantine_fraction"])


if __name__ == "__main__":
    main(run)
