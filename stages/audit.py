"""Stage audit: memorisation and fidelity of the synthetic set in the fixed feature space -> reports/audit/."""
from pathlib import Path

import pandas as pd

from dermsynth.audit.run import PARAM_KEYS, AuditConfig, audit, near_copy_sheet, write_outputs
from dermsynth.config import from_block
from dermsynth.diffusion.preview import real_vs_synthetic
from dermsynth.errors import UserError
from dermsynth.timings import write_timings
from stages._common import main


def run(params: dict) -> None:
    cfg = from_block(AuditConfig, {**{k: v for k, v in params["audit"].items() if k in PARAM_KEYS}, "seed": params["data_seed"]})
    paths = params["paths"]
    manifest = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(paths["synthetic"]) / "metadata.csv", keep_default_na=False)
    result = audit(manifest, synthetic, Path("models/audit_features"), cfg)
    out = Path(paths["reports"]) / "audit"
    write_outputs(result, out)
    real_vs_synthetic(manifest, synthetic, 8, params["data_seed"]).save(out / "real_vs_synthetic.png")
    near_copy_sheet(result["memorization"], manifest, synthetic, cfg.near_copy_pairs).savefig(out / "near_copies.png", dpi=90)
    write_timings("audit", result["timer"].times, paths["reports"])
    s = result["summary"]
    print(f"audit: {s['near_copies']} near-copies of {s['synthetic_images']} ({s['near_copy_rate']:.2%}); "
          f"FID all {s['fidelity']['all']['fid']:.2f} ({s['fidelity']['all']['fid_space']})")
    if s["near_copy_rate"] > cfg.max_near_copy_rate:
        raise UserError(f"{s['near_copies']} synthetic images ({s['near_copy_rate']:.1%}) are near-copies of real "
                         f"training images, more than audit.max_near_copy_rate={cfg.max_near_copy_rate:.1%}; "
                         f"see {out / 'memorization.csv'} and {out / 'near_copies.png'}")


if __name__ == "__main__":
    main(run)
