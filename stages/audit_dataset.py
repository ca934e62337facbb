"""Stage audit_dataset: the FiftyOne dataset `dermsynth` (real + synthetic, labels, predictions, embeddings).

The only audit step that reads predictions, so the only one a ratio experiment re-runs.
"""
import json
import os
from pathlib import Path

from dermsynth.files import write_json
from stages._common import main


def in_temporary_clone() -> bool:
    """Queued / --temp DVC experiments run in a clone that is deleted afterwards."""
    root = os.environ.get("DVC_ROOT")
    return bool(root) and Path(root).resolve() != Path.cwd().resolve()


def run(params: dict) -> None:
    out = Path(params["paths"]["reports"]) / "audit" / "dataset.json"
    if in_temporary_clone():
        print("audit_dataset: temporary experiment clone - the FiftyOne dataset is left as it is "
              "(apply the experiment, then `dermsynth app --rebuild`)")
        info = {"built": False, "reason": "temporary experiment clone"}
    else:
        from dermsynth.audit.build import build_from_outputs
        from dermsynth.audit.dataset import dataset_counts

        ds = build_from_outputs(params)
        info = {"built": True, "dataset": ds.name, **dataset_counts(ds.name)}
    write_json(out, info)
    print(json.dumps(info))


if __name__ == "__main__":
    main(run)
