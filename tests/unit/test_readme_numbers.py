"""The README's figures quoted from committed reports are those reports' numbers, rounded as printed,
and its results-reading recipes work as printed.

"The README" is README.md and the docs its sections moved to (DOCS, read in that fixed order and
joined): a pattern is looked for in all of them, and the first place that says it is checked.

Every expected value is read from the report at test time, never typed here, so the test stays true
when the pipeline re-runs and the README is brought up to date with it. A README sentence whose
numbers the current reports no longer give is marked STALE below (strict: the mark must go once the
README is fixed); a sentence this test can no longer find fails, so that a rewrite updates it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
# README.md first, then the pages its sections moved to; a fixed order, so the same sentence is found every time
DOCS = ("README.md", "docs/demo_results.md", "docs/parameters.md", "docs/data.md", "docs/reproducibility.md",
        "docs/performance.md", "docs/scale_out.md", "docs/development.md", "docs/study.md")
RAW = "\n\n".join((ROOT / doc).read_text() for doc in DOCS)
TEXT = " ".join(RAW.split())  # sentences wrap across lines
MODELS = {"ViT-Tiny": "vit_tiny_patch16_224", "MobileNetV2": "mobilenetv2_100"}


def STALE(what: str):  # noqa: N802 - reads as a label on the test
    # raises=AssertionError: only a number that differs is expected; a sentence not found (pytest.fail)
    # or a report that cannot be read still fails the test
    return pytest.mark.xfail(strict=True, raises=AssertionError,
                             reason=f"README quotes an earlier run's {what}: reported, not yet fixed")


def quoted(pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, TEXT)
    if not m:
        pytest.fail(f"the README and its docs ({', '.join(DOCS)}) no longer say /{pattern}/: "
                    "update this test with the sentence")
    return m.groups()


def report(path: str) -> dict:
    return json.loads((REPORTS / path).read_text())


def as_printed(value: float, printed: str) -> set[str]:
    """`value` rounded as `printed` shows its number (the same decimals, a percent sign, a plus sign):
    rounded from the value itself, or half up from the 3 decimals the reports' markdown prints
    (ratio_sweep.md's +0.165 is a fair +0.17, though the value 0.164974 rounds to +0.16)."""
    percent = printed.endswith("%")
    number = printed.rstrip(" %")
    decimals = len(number.split(".")[1]) if "." in number else 0
    sign = "+" if number.startswith("+") else ""
    v = float(value) * (100 if percent else 1)
    half_up = Decimal(f"{v:.3f}").quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    texts = {f"{v:{sign}.{decimals}f}", f"{half_up:{sign}.{decimals}f}"}
    return {t + (" %" if percent else "") for t in texts}


def same(printed: tuple[str, ...], *values: float) -> None:
    assert len(printed) == len(values)
    wrong = [(p, sorted(as_printed(v, p))[0]) for p, v in zip(printed, values) if p not in as_printed(v, p)]
    assert not wrong, "README prints / the report gives: " + ", ".join(f"{p} / {a}" for p, a in wrong)


def metrics(model: str) -> dict:
    return report(f"metrics/{model}.json")


# ---- reports/ingest.json, quarantine.csv, duplicates.csv --------------------------------------------------------

def test_ingest_counts():
    ing = report("ingest.json")
    republished = quoted(r"The demo's ISIC 2019 republishes (\d+) HAM10000 images: (\d+) copies dropped")
    same(republished, sum(ing["dropped_per_source"]["isic2019"].values()), ing["dropped_copies"])
    assert len(pd.read_csv(REPORTS / "duplicates.csv")) == ing["dropped_copies"]
    quarantine = quoted(r"its quarantine report lists (\d+) items")
    same(quarantine, ing["quarantined"])
    assert len(pd.read_csv(REPORTS / "quarantine.csv")) == ing["quarantined"]


# ---- reports/preprocess/summary.json ------------------------------------------------------------------------------

def test_prepared_image_counts():
    pre = report("preprocess/summary.json")
    same(quoted(r"agrees with it on the band of [\d.]+ % of the (\d+) demo images"), pre["images"])
    same(quoted(r"ITA estimate vs the phantoms' true skin tone, (\d+) demo images"), pre["images"])
    same(quoted(r"(\d+) benign and (\d+) malignant real training images are too few"),
         pre["splits"]["train"]["benign"], pre["splits"]["train"]["malignant"])
    same(quoted(r"\((\d+) px for the (\d+)-px demo"), pre["hair_removal"]["working_short_side"],
         pre["hair_removal"]["output_short_side"])


def _table_cell(row_label: str, column: str) -> str:
    """A cell of the README's preprocessing score table, found by its row label and column header."""
    lines = [line for line in RAW.splitlines() if line.startswith("| score (")]
    assert len(lines) == 1, "the README's preprocessing score table is gone: update this test"
    start = RAW.splitlines().index(lines[0])
    table = [[c.strip() for c in line.strip().strip("|").split("|")]
             for line in RAW.splitlines()[start:] if line.startswith("|")]
    col = next(i for i, h in enumerate(table[0]) if h.startswith(column))
    row = next(r for r in table if r[0].startswith(row_label))
    return row[col]


def test_preprocessing_scores_on_phantoms():
    """The phantom column of the preprocessing table: reports/preprocess/summary.json scores the demo's
    output size (its `output_short_side`), which is one side of each `64 px / 512 px` cell."""
    pre = report("preprocess/summary.json")
    hair, centring = pre["hair_removal"], pre["centring_on_phantoms"]
    sizes = [int(s) for s in re.match(r"\| score \((\d+) px / (\d+) px\)", RAW[RAW.index("| score ("):]).groups()]
    side = sizes.index(hair["output_short_side"])
    header = quoted(r"\| phantoms \((\d+) of (\d+) x (\d+)\) \|")
    same(header, hair["phantoms"], *hair["phantom_size"])
    assert centring["phantoms"] == hair["phantoms"]

    def part(row: str) -> str:
        return _table_cell(row, "phantoms").split(" / ")[side]

    removed = re.fullmatch(r"(\S+ %) \((\S+ %)\)", part("phantom hair pixels removed (over the lesion)")).groups()
    same(removed, hair["removed"], hair["removed_over_lesion"])
    same((part("lesion centred and whole"),), centring["centred_whole"])
    same((part("segmentation Dice, median"),), centring["dice_median"])
    same((part("rim left, worst image"),), centring["rim_share_max"])


# ---- reports/generate/summary.json ---------------------------------------------------------------------------------

def test_synthetic_counts():
    gen = report("generate/summary.json")
    same(quoted(r"data/synthetic/\{images,metadata.csv\} \((\d+) \+ (\d+)\)"),
         gen["per_class"]["benign"], gen["per_class"]["malignant"])
    same(quoted(r"→ (\d+) synthetic images"), gen["images"])


# ---- reports/metrics/<model>.json and models/classifiers/<model>/summary.json ---------------------------------------

def test_demo_test_set_sizes():
    sizes = quoted(r"test sets: ISIC (\d+) images, HAM10000 (\d+)")
    for model in MODELS.values():
        same(sizes, metrics(model)["isic_n"], metrics(model)["ham10000_n"])


def test_demo_headline_metrics():
    printed = quoted(r"ViT-Tiny AUROC ([\d.]+) \(ISIC\) / ([\d.]+) \(HAM10000\), balanced accuracy ([\d.]+) / "
                     r"([\d.]+); MobileNetV2 AUROC ([\d.]+) / ([\d.]+), balanced accuracy ([\d.]+) / ([\d.]+)\.")
    vit, mob = metrics(MODELS["ViT-Tiny"]), metrics(MODELS["MobileNetV2"])
    same(printed, *(m[k] for m in (vit, mob) for k in ("isic_auc", "ham10000_auc", "isic_balanced_accuracy",
                                                         "ham10000_balanced_accuracy")))


def test_demo_interval_example():
    same(quoted(r"MobileNetV2 ISIC AUROC \[([\d.]+), ([\d.]+)\]"), *metrics(MODELS["MobileNetV2"])["isic_auc_ci95"])


def test_training_set_counts():
    """The models' summaries are DVC outputs (models/ is not in git): checked where they were pulled."""
    printed = quoted(r"holds (\d+) \+ (\d+) benign and (\d+) \+ (\d+) malignant real \+ synthetic images: a "
                     r"synthetic share of ([\d.]+) and ([\d.]+) per class")
    found = [ROOT / "models/classifiers" / m / "summary.json" for m in MODELS.values()]
    if not all(f.is_file() for f in found):
        pytest.skip("models/classifiers/*/summary.json not here (`dvc pull` fetches them)")
    for f in found:
        s = json.loads(f.read_text())
        same(printed, s["n_real_benign"], s["n_synthetic_benign"], s["n_real_malignant"], s["n_synthetic_malignant"],
             s["synthetic_share_benign"], s["synthetic_share_malignant"])


def test_subgroup_keys_the_readme_names_exist():
    """The flat subgroup keys the README names are in the metrics files, and its recipe's remark holds:
    a skin-tone gap needs two groups with 5+ images of each class, which the demo's HAM10000 lacks."""
    keys = set().union(*(metrics(m) for m in MODELS.values()))
    named = set(re.findall(r"`((?:isic|ham10000)_\w+_(?:worst|gap)_\w+)`", RAW))
    assert named and named <= keys, named - keys
    if "the demo's HAM10000 test set has one, so no gap" in TEXT:
        assert not any(k.startswith("ham10000_") and "_gap_skin_tone" in k for k in keys)
        assert any(k.startswith("ham10000_") and "_worst_skin_tone" in k for k in keys)


# ---- reports/audit/summary.json, fidelity.json, skin_tone.json -------------------------------------------------------

def test_audit_near_copies():
    a = report("audit/summary.json")
    printed = quoted(r"flags (\d+) of (\d+) synthetic images \(([\d.]+ %)\) as near-copies, (\d+) by embedding "
                     r"distance and (\d+) by perceptual hash")
    same(printed, a["near_copies"], a["synthetic_images"], a["near_copy_rate"], a["near_copies_by_embedding"],
         a["near_copies_by_phash"])


def _fid_sentence() -> str:
    return quoted(r"(FID is computed in a PCA space.*?\(malignant\)\.)")[0]


def test_fid_feature_dimension():
    fid = report("audit/fidelity.json")
    dims = {re.search(r"x (\d+) dimensions", fid[c]["fid_space"]).group(1) for c in ("benign", "malignant")}
    assert len(dims) == 1
    same(quoted(r"too few for (\d+) dimensions"), int(dims.pop()))
    same(quoted(r"(\d+) benign and (\d+) malignant real training images are too few"), fid["benign"]["n_real"],
         fid["malignant"]["n_real"])


def test_fidelity_numbers():
    fid = report("audit/fidelity.json")
    printed = quoted(r"([\d.]+) for benign in a \d+-d space and ([\d.]+) for malignant in a \d+-d space, .*?; "
                     r"precision / recall / density / coverage "
                     r"([\d.]+) / ([\d.]+) / ([\d.]+) / ([\d.]+) \(benign\) and ([\d.]+) / ([\d.]+) / ([\d.]+) / "
                     r"([\d.]+) \(malignant\)")
    b, m = fid["benign"], fid["malignant"]
    same(printed, b["fid"], m["fid"], *(b[k] for k in ("precision", "recall", "density", "coverage")),
         *(m[k] for k in ("precision", "recall", "density", "coverage")))


def test_fid_names_the_space_of_each_class():
    """A FID is comparable only within one space: where the classes' PCA spaces differ, the README must
    name each one's dimension beside its FID, not set the two numbers side by side."""
    fid = report("audit/fidelity.json")
    dims = {c: re.match(r"(\d+)-d PCA", fid[c]["fid_space"]).group(1) for c in ("benign", "malignant")}
    if len(set(dims.values())) == 1:
        return
    named = set(re.findall(r"(\d+)-d\b", _fid_sentence()))
    assert named == set(dims.values()), f"README's FID sentence names {sorted(named)}-d spaces; fidelity.json: {dims}"


def test_skin_tone_audit():
    st = report("audit/skin_tone.json")
    printed = quoted(r"median ITA of the synthetic images ([\d.]+) \(benign\) and ([\d.]+) \(malignant\) against "
                     r"([\d.]+) and ([\d.]+) of the real training images; Wasserstein distance ([\d.]+) and ([\d.]+) "
                     r"degrees, band total variation ([\d.]+) and ([\d.]+)")
    b, m = st["benign"], st["malignant"]
    same(printed, b["median_ita_synthetic"], m["median_ita_synthetic"], b["median_ita_real"], m["median_ita_real"],
         b["wasserstein_ita_degrees"], m["wasserstein_ita_degrees"], b["total_variation_bands"],
         m["total_variation_bands"])


# ---- reports/ratio_sweep*.csv and reports/filter_study/ --------------------------------------------------------------

def _study(folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_csv(REPORTS / folder / "ratio_sweep.csv"),
            pd.read_csv(REPORTS / folder / "ratio_sweep_runs.csv", dtype={"data_seed": str}))


def _level(s: pd.DataFrame, model: str, ts: str, metric: str, frac: float = 1.0, filt: str | None = None) -> pd.Series:
    """Mean per ratio of one condition of a study."""
    sel = s[(s.model == model) & (s.testset == ts) & (s.metric == metric) & (s.real_fraction == frac)]
    if filt is not None:
        sel = sel[sel["filter"] == filt]
    assert sel.ratio.is_unique, "more than one condition: name its filter"
    return sel.set_index("ratio")


def test_ratio_study_numbers():
    s, runs = _study(".")
    vit, mob = MODELS["ViT-Tiny"], MODELS["MobileNetV2"]
    same(quoted(r"(\d+) MLflow runs: (\d+) ratios x (\d+) seeds x (\d+) models"), runs.run_id.nunique(),
         runs.ratio.nunique(), runs.seed.nunique(), runs.model.nunique())
    survivors, tests = quoted(r"(\w+) effects? survives? Holm correction over its (\d+) tests")
    assert survivors == {1: "One"}.get(int((s.p_holm < 0.05).sum()), str(int((s.p_holm < 0.05).sum())))
    same((tests,), s.p.notna().sum())
    ham = _level(s, vit, "ham10000", "auc")
    same(quoted(r"falls to chance on HAM10000 \(AUROC ([\d.]+) at ratio 0, ([\d.]+) at ratio 1: ([-+\d.]+) "
                r"\[([-+\d.]+), ([-+\d.]+)\], adjusted p ([\d.]+)\)"),
         ham.loc[0.0, "mean"], ham.loc[1.0, "mean"], *ham.loc[1.0, ["delta", "delta_low", "delta_high", "p_holm"]])
    isic = _level(s, vit, "isic", "auc")["mean"]
    middle = isic.loc[[0.5, 0.75, 0.9375]]
    same(quoted(r"ISIC ([\d.]+) at 0, ([\d.]+)-([\d.]+) at 0.5-0.9375\)"), isic.loc[0.0], middle.min(), middle.max())
    m_isic, m_ham = (_level(s, mob, ts, "auc")["mean"] for ts in ("isic", "ham10000"))
    same(quoted(r"MobileNetV2 holds it \(ISIC ([\d.]+) at 0, ([\d.]+)-([\d.]+) with synthetic images; HAM10000 "
                r"([\d.]+) at 0, ([\d.]+)-([\d.]+)\)"),
         m_isic.loc[0.0], m_isic.drop(0.0).min(), m_isic.drop(0.0).max(),
         m_ham.loc[0.0], m_ham.drop(0.0).min(), m_ham.drop(0.0).max())
    quarter = s[(s.metric == "auc") & (s.real_fraction == 0.25) & (s.ratio == 0.0)]["mean"]
    same(quoted(r"both models sit near chance at ratio 0 \(AUROC ([\d.]+)-([\d.]+)\)"), quarter.min(), quarter.max())
    ba = _level(s, mob, "ham10000", "balanced_accuracy", frac=0.25)
    same(quoted(r"balanced accuracy from ([\d.]+) to ([\d.]+) at ratio 1 \(([-+\d.]+) \[([-+\d.]+), ([-+\d.]+)\], "
                r"raw p ([\d.]+), Holm (\d+)\)"),
         ba.loc[0.0, "mean"], ba.loc[1.0, "mean"], *ba.loc[1.0, ["delta", "delta_low", "delta_high", "p", "p_holm"]])
    gaps = s[s.metric.str.startswith("auc_gap_")]
    same(quoted(r"AUROC gaps between patient groups \(sex, age band, site\) move by ([-+\d.]+) to ([-+\d.]+) with "
                r"ratio, none distinguishable from zero \(smallest raw p ([\d.]+), Holm (\d+)\)"),
         gaps.delta.min(), gaps.delta.max(), gaps.p.min(), gaps.p_holm.min())
    assert sorted(gaps.metric.unique()) == ["auc_gap_age_band", "auc_gap_sex", "auc_gap_site"]
    same(quoted(r"`data_seed` was fixed at (\d+)"), int(runs.data_seed.unique().item()))


def test_filter_study_numbers():
    s, runs = _study("filter_study")
    same(quoted(r"both models, (\d+) runs plus the default one"), runs[runs.seed.isin([1, 2, 3])].run_id.nunique())
    same(quoted(r"no effect survives Holm over its (\d+) tests \(smallest adjusted p ([\d.]+)\)"), s.p.notna().sum(),
         s.p_holm.min())
    assert not (s.p_holm < 0.05).any()

    def delta(model: str, ts: str, keep: str) -> pd.Series:
        return _level(s, MODELS[model], ts, "auc", filt=f"combined {keep}").loc[0.5]

    printed = quoted(r"ViT-Tiny ISIC ([-+\d.]+) vs ([-+\d.]+), HAM10000 ([-+\d.]+) vs ([-+\d.]+) \[([-+\d.]+), "
                     r"([-+\d.]+)\]; MobileNetV2 ISIC ([-+\d.]+) vs ([-+\d.]+), HAM10000 ([-+\d.]+) vs ([-+\d.]+)\.")
    same(printed, delta("ViT-Tiny", "isic", "1").delta, delta("ViT-Tiny", "isic", "0.8").delta,
         delta("ViT-Tiny", "ham10000", "1").delta, delta("ViT-Tiny", "ham10000", "0.8").delta,
         delta("ViT-Tiny", "ham10000", "0.8").delta_low, delta("ViT-Tiny", "ham10000", "0.8").delta_high,
         delta("MobileNetV2", "isic", "1").delta, delta("MobileNetV2", "isic", "0.8").delta,
         delta("MobileNetV2", "ham10000", "1").delta, delta("MobileNetV2", "ham10000", "0.8").delta)
    gaps = s[s.metric.str.startswith("auc_gap_")]
    same(quoted(r"The AUROC gaps between patient groups \(sex, age band, site\) move by ([-+\d.]+) to ([-+\d.]+) with "
                r"ratio, none distinguishable from zero \(unadjusted p >= ([\d.]+), Holm (\d+)\)"),
         gaps.delta.min(), gaps.delta.max(), gaps.p.min(), gaps.p_holm.min())


# ---- the results-reading recipes, run as printed ---------------------------------------------------------------------

def _recipe(starts: str) -> str:
    """A command of the README's bash blocks, its continuation lines joined, its comment dropped."""
    lines = RAW.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(starts))
    cmd = lines[i]
    while cmd.split("  #")[0].rstrip().endswith("\\"):
        i += 1
        cmd = cmd.split("  #")[0].rstrip()[:-1] + " " + lines[i].strip()
    return cmd.split("  #")[0].strip()


def _run(cmd: str) -> str:
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("no dvc in this environment")
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "DVC_EXP_NAME")}
    env |= {"PATH": f"{Path(sys.executable).parent}:{env['PATH']}", "DVC_NO_ANALYTICS": "1"}
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    if "Unable to acquire lock" in p.stderr:
        pytest.skip("a DVC command is running in the repository")
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_readme_subgroup_recipe_prints_the_subgroup_keys():
    """The recipe that replaced `dvc metrics show | grep ...` (one table row per file, hundreds of
    columns wide: grep found only its header): one metric a line, every model's worst-group keys."""
    out = _run(_recipe("dvc metrics diff --all"))
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["Path", "Metric"]
    for model in MODELS.values():
        keys = {k for k in metrics(model) if "worst_skin_tone" in k or "gap_skin_tone" in k}
        shown = {line.split()[1] for line in lines[1:] if line.startswith(f"reports/metrics/{model}.json")}
        assert shown == keys


def test_readme_exp_show_recipe_prints_the_columns_that_matter():
    out = _run(_recipe("dvc exp show --csv"))
    header = out.splitlines()[0].split()
    assert header[:2] == ["Experiment", "rev"]
    assert {"seed", "ratio", "real_fraction", "keep_fraction"} <= set(header)
    assert {f"{m}:{ts}" for m in MODELS.values() for ts in ("isic", "ham10000")} <= set(header)
    assert len(header) == 10  # the few that matter, not the hundreds `dvc exp show` has
    assert any(line.split()[0] == "workspace" for line in out.splitlines()[1:])
