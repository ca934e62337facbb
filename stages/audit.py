"""Stage audit: memorisation, fidelity and skin tone of the synthetic set in the fixed feature space -> reports/audit/."""
from pathlib import Path

import pandas as pd

from dermsynth.audit import skin_tone
from dermsynth.audit.reconstruction import load_vae
from dermsynth.audit.run import PARAM_KEYS, AuditConfig, audit, near_copy_sheet, write_outputs
from dermsynth.config import from_block
from dermsynth.data.records import safe_join
from dermsynth.diffusion.preview import real_vs_synthetic
from dermsynth.errors import UserError
from dermsynth.files import write_json
from dermsynth.plotting import save_figure
from dermsynth.timings import write_timings
from dermsynth.traits import adherence_report
from stages._common import main


def _generator_vae(synthetic: pd.DataFrame):
    """The VAE every synthetic image was drawn through (its metadata's base_model), or None for an imported
    set (no base model named) or one drawn by several: the latent ceiling then is not measured. A base model
    outside the repository is refused: metadata.csv is data, not a licence to read anywhere."""
    bases = set(synthetic.get("base_model", pd.Series(dtype=str)).astype(str)) - {""}
    base = safe_join(Path.cwd(), next(iter(bases))) if len(bases) == 1 else None
    if base is None or not (base / "vae").is_dir():
        print(f"audit: no latent ceiling (synthetic images name base models {sorted(bases) or 'none'})")
        return None
    return load_vae(base)


def run(params: dict) -> None:
    cfg = from_block(AuditConfig, {**{k: v for k, v in params["audit"].items() if k in PARAM_KEYS}, "seed": params["data_seed"]})
    paths = params["paths"]
    manifest = pd.read_csv(Path(paths["prepared"]) / "manifest.csv", keep_default_na=False, dtype={"image_id": str})
    synthetic = pd.read_csv(Path(paths["synthetic"]) / "metadata.csv", keep_default_na=False)
    result = audit(manifest, synthetic, Path("models/audit_features"), cfg, vae=_generator_vae(synthetic))
    out = Path(paths["reports"]) / "audit"
    write_outputs(result, out)
    real_vs_synthetic(manifest, synthetic, 8, params["data_seed"]).save(out / "real_vs_synthetic.png")
    sheet = near_copy_sheet(result["memorization"], manifest, synthetic, cfg.near_copy_pairs,
                            distance_max=result["summary"]["distance_threshold"], phash_max=cfg.phash_max)
    save_figure(sheet, out / "near_copies.png", dpi=90)
    with result["timer"].step("skin tone"):  # did each LoRA keep the real skin-tone mix?
        tones = skin_tone.measure(manifest[manifest.split == "train"], synthetic, workers=cfg.workers)
        tones.to_csv(out / "skin_tone.csv", index=False)
        skin_tone.histogram(tones, out / "ita_histogram.png")
        write_json((out / "skin_tone.json"), skin_tone.distances(tones))
        # the traits the prompts asked for (generate.attributes) against what the images show
        write_json((out / "adherence.json"), adherence_report(synthetic, tones))
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
