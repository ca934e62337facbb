"""What the generator learnt of skin tone: ITA of synthetic images per class against the real training set's.

Both sides are measured alike, on the lesion-centred images the generator learnt from (skin outside
the lesion's box), so the comparison is fair even though a crop shows less skin than the photograph
the manifest's `ita` was measured on. Distances per class: Wasserstein (earth mover's) distance of
ITA in degrees, and total variation distance between the skin-tone band shares.
"""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import wasserstein_distance  # noqa: E402

from dermsynth.contracts import SKIN_TONE_COLUMNS  # noqa: E402
from dermsynth.data.preprocess import image_ita  # noqa: E402
from dermsynth.data.subgroups import ITA_BANDS, SKIN_TONES, skin_tone  # noqa: E402
from dermsynth.parallel import pmap  # noqa: E402
from dermsynth.plotting import save_figure  # noqa: E402


def _crop_ita(root: Path, path: str) -> float:
    with Image.open(root / path) as im:
        return image_ita(np.asarray(im.convert("RGB")), grow=0.0)


def measure(real_train: pd.DataFrame, synthetic: pd.DataFrame, root: Path = Path("."), workers: int = 0) -> pd.DataFrame:
    """One row per real training and synthetic image (contracts.SKIN_TONE_COLUMNS)."""
    rows = pd.concat([real_train.assign(origin="real")[["image_id", "origin", "label", "path"]],
                      synthetic.assign(origin="synthetic")[["image_id", "origin", "label", "path"]]], ignore_index=True)
    values = pmap(functools.partial(_crop_ita, root), list(rows.path), workers, desc="skin tone (ITA)")
    rows["ita"] = np.round(values, 2)
    rows["skin_tone"] = [skin_tone(v) for v in values]
    return rows[SKIN_TONE_COLUMNS]


def distances(table: pd.DataFrame) -> dict:
    """Per class: real vs synthetic ITA medians, band shares, Wasserstein and total variation distance."""
    out = {}
    for label, g in table.groupby("label"):
        real, syn = g[g.origin == "real"], g[g.origin == "synthetic"]
        r, s = real.ita.dropna().to_numpy(), syn.ita.dropna().to_numpy()
        shares = {o: d.skin_tone.value_counts(normalize=True).reindex([*SKIN_TONES, "unknown"], fill_value=0.0)
                  for o, d in (("real", real), ("synthetic", syn))}
        out[label] = {
            "n_real": int(len(real)), "n_synthetic": int(len(syn)),
            "median_ita_real": round(float(np.median(r)), 2) if len(r) else None,
            "median_ita_synthetic": round(float(np.median(s)), 2) if len(s) else None,
            "wasserstein_ita_degrees": round(float(wasserstein_distance(r, s)), 3) if len(r) and len(s) else None,
            "total_variation_bands": round(float(0.5 * (shares["real"] - shares["synthetic"]).abs().sum()), 4),
            "bands_real": {k: round(float(v), 4) for k, v in shares["real"].items()},
            "bands_synthetic": {k: round(float(v), 4) for k, v in shares["synthetic"].items()},
        }
    return out


def band_spans(lo: float, hi: float) -> list[tuple[str, float, float]]:
    """(name, left, right) of each ITA band inside [lo, hi], lightest first (ITA_BANDS' lower bounds)."""
    spans, upper = [], hi
    for low, name in ITA_BANDS:
        left, right = max(low, lo), min(upper, hi)
        if right > left:
            spans.append((name, left, right))
        upper = low
    return spans


def histogram_figure(table: pd.DataFrame) -> plt.Figure:
    """Real vs synthetic ITA per class, the Del Bino bands marked and named (lighter skin to the right)."""
    labels = sorted(table.label.unique())
    fig, axes = plt.subplots(1, len(labels), figsize=(4.8 * len(labels), 3.6), squeeze=False, layout="constrained")
    values = table.ita.dropna()
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (-60.0, 90.0)
    bins = np.linspace(min(lo, -40.0), max(hi, 70.0), 40)
    for ax, label in zip(axes[0], labels):
        for origin, color in (("real", "tab:blue"), ("synthetic", "tab:orange")):
            v = table[(table.label == label) & (table.origin == origin)].ita.dropna()
            ax.hist(v, bins=bins, density=True, alpha=0.5, color=color, label=f"{origin} (n={len(v)})")
        for bound, _ in ITA_BANDS[:-1]:
            ax.axvline(bound, color="grey", lw=0.6, ls=":")
        # each band's name inside it, at the top: the dotted lines alone left a reader to look the edges up
        for name, left, right in band_spans(bins[0], bins[-1]):
            ax.text((left + right) / 2, 0.98, name.replace("_", " "), transform=ax.get_xaxis_transform(),
                    rotation=90, ha="center", va="top", fontsize=7, color="dimgrey")
        ax.set(title=f"{label}: ITA of the skin around the lesion", xlim=(bins[0], bins[-1]), ylabel="density",
               xlabel="ITA (degrees; Del Bino bands: darker skin left, lighter right)")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # headroom, so the band names sit above the bars
        ax.legend(fontsize=7, loc="center left")  # the top holds the band names
    return fig


def histogram(table: pd.DataFrame, out_png: Path) -> None:
    save_figure(histogram_figure(table), out_png)
