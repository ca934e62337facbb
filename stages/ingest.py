"""Stage ingest: data/raw -> data/interim/manifest.csv + reports/{quarantine,duplicates}.csv."""
import json
from pathlib import Path

from dermsynth.data.ingest import check_usable, format_summary, ingest
from stages._common import main


def run(params: dict) -> None:
    p, paths = params["ingest"], params["paths"]
    result = ingest(paths["raw"], min_size=p["min_size"], workers=p["workers"], source_priority=p["source_priority"],
                    max_image_bytes=p["max_image_bytes"], max_pixels=p["max_pixels"])
    Path(paths["interim"]).mkdir(parents=True, exist_ok=True)
    Path(paths["reports"]).mkdir(parents=True, exist_ok=True)
    result.manifest.to_csv(Path(paths["interim"]) / "manifest.csv", index=False)
    result.quarantine.to_csv(Path(paths["reports"]) / "quarantine.csv", index=False)
    result.duplicates.to_csv(Path(paths["reports"]) / "duplicates.csv", index=False)
    summary = result.summary()
    (Path(paths["reports"]) / "ingest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    check_usable(result, p["max_quarantine_fraction"])


if __name__ == "__main__":
    main(run)
