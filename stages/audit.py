"""Stage audit: memorisation, fidelity, embeddings -> reports/audit/, and the FiftyOne dataset `dermsynth`."""
import json
import os
from pathlib import Path

import pandas as pd

from dermsynth.audit.run import AuditConfig, audit, write_outputs
from dermsynth.config import from_block
from dermsynth.diffusion.preview import real_vs_synthetic
from stages._common import main


def in_temporary_clone() -> bool:
    """Queued / --temp DVC experiments run in a clone that is deleted afterwards."""
    root = os.environ.get("DVC_ROOT")
    return bool(root) and Path(root).resolve() != Path.cwd().resolve()


def run(params: dict) -> None:
    cfg = from_block(AuditConfig, params["audit"])
    paths = params["paths"]
    manifest = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(paths["synthetic"]) / "metadata.csv", keep_default_na=False)
    result = audit(manifest, synthetic, Path("models/classifiers"), cfg)
    out = Path(paths["reports"]) / "audit"
    write_outputs(result, out)
    real_vs_synthetic(manifest, synthetic, 8, params["data_seed"]).save(out / "real_vs_synthetic.png")
    if in_temporary_clone():
        print("audit: temporary experiment clone - the FiftyOne dataset is left as it is "
              "(apply the experiment, then `dermsynth app --rebuild`)")
    else:
        from dermsynth.audit.build import build_from_outputs

        with result["timer"].step("FiftyOne dataset"):
            build_from_outputs(params, embeddings=result["embeddings"], memorization=result["memorization"])
    s = result["summary"]
    (out / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    print(json.dumps(s, indent=2))
    if s["near_copy_rate"] > cfg.max_near_copy_rate:
        raise ValueError(f"{s['near_copies']} synthetic images ({s['near_copy_rate']:.1%}) are near-copies of real "
                         f"training images, more than audit.max_near_copy_rate={cfg.max_near_copy_rate:.1%}; "
                         f"see {out / 'memorization.csv'}")


if __name__ == "__main__":
    main(run)
