"""The pictures a reader looks at: what each says about itself, checked on the matplotlib Figure (or the
DVC plot spec, or the FiftyOne dataset) before anything is saved."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from dermsynth.classify.evaluate import (ROC_COLUMNS, confusion_table, gradcam_figure, roc_confusion_figure,  # noqa: E402
                                         roc_table)
from dermsynth.classify.metrics import METRICS, binary_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _predictions(seed: int = 0) -> pd.DataFrame:
    """Two test sets of noisy scores, rounded so that some scores tie across the classes (diagonal ROC runs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for testset, n in (("isic", 60), ("ham10000", 38)):
        label = (rng.random(n) < 0.35).astype(int)
        score = np.clip(0.3 * label + rng.normal(0.4, 0.2, n), 0, 1).round(1)
        rows.append(pd.DataFrame({"image_id": [f"{testset}_{i}" for i in range(n)], "testset": testset,
                                  "label": label, "score": score, "pred": (score >= 0.5).astype(int)}))
    return pd.concat(rows, ignore_index=True)


def _metrics(pred: pd.DataFrame, threshold: float = 0.5) -> dict:
    out = {"threshold": threshold}
    for ts, g in pred.groupby("testset"):
        out |= {f"{ts}_{k}": v for k, v in binary_metrics(g.label, g.score, threshold).items()}
        out[f"{ts}_auc_ci95"] = [out[f"{ts}_auc"] - 0.1, out[f"{ts}_auc"] + 0.1]
    return out


# --- ROC and confusion: the data behind `dvc plots`, and the PNG the track stage logs to MLflow ---

def test_roc_data_is_one_monotone_curve_per_testset_from_0_0_to_1_1():
    pred = pd.concat([_predictions(), pd.DataFrame({"image_id": ["x", "y"], "testset": "one_class", "label": 0,
                                                    "score": [0.2, 0.7], "pred": [0, 1]})], ignore_index=True)
    t = roc_table(pred)
    assert list(t.columns) == ROC_COLUMNS
    assert set(t.testset) == {"isic", "ham10000"}  # a test set of one class has no curve (and no AUROC)
    for ts, g in t.groupby("testset"):
        g = g.sort_values("point")
        assert (g.point.to_numpy() == np.arange(len(g))).all()
        fpr, tpr = g.fpr.to_numpy(), g.tpr.to_numpy()
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()  # one curve, never turning back
        # joined in point order, the curve encloses exactly the AUROC: it is the true curve, not a smoothing
        p = pred[pred.testset == ts]
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(p.label, p.score))
        assert g.panel.nunique() == 1 and g.curve_label.iloc[0].startswith(f"AUROC {roc_auc_score(p.label, p.score):.3f}")


def test_confusion_data_names_classes_and_keeps_testsets_apart():
    pred = _predictions()
    c = confusion_table(pred)
    assert set(c.actual) == set(c.predicted) == {"benign", "malignant"}
    assert c.groupby("panel").size().to_dict() == {"HAM10000 test set": 38, "ISIC test set": 60}


def _evaluate_plots() -> dict:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    return {next(iter(p)): next(iter(p.values())) for p in stage["plots"]}


def _dvc_datapoints(table: pd.DataFrame, rev: str = "workspace") -> list[dict]:
    """Rows as DVC hands a CSV to its templates: every value a string, plus the revision."""
    return [{k: ("" if pd.isna(v) else str(v)) for k, v in r.items()} | {"rev": rev} for r in table.to_dict("records")]


def _walk(spec):
    yield spec
    if isinstance(spec, dict):
        for v in spec.values():
            yield from _walk(v)
    elif isinstance(spec, list):
        for v in spec:
            yield from _walk(v)


def test_dvc_roc_plot_is_unsmoothed_per_testset_and_titled_with_the_model():
    from dvc_render import VegaRenderer

    props = _evaluate_plots()["reports/plots/${item.model}/roc.csv"]
    assert (REPO / props["template"]).is_file() and "${item.model}" in props["title"]
    t = roc_table(_predictions())
    spec = VegaRenderer(_dvc_datapoints(t), "roc", **{**props, "template": str(REPO / props["template"]),
                                                     "title": "ROC of resnet18"}).get_filled_template()
    nodes = list(_walk(spec))
    assert not any(isinstance(n, dict) and "loess" in n for n in nodes)  # DVC's default template smooths
    assert spec["title"]["text"] == "ROC of resnet18" and spec["facet"]["column"]["field"] == "panel"
    line = next(n for n in nodes if isinstance(n, dict) and n.get("mark", {}) == {"type": "line", "interpolate": "linear",
                                                                                   "tooltip": {"content": "data"}})
    # vertical steps share an x and DVC passes strings: only a numeric point order draws the steps
    assert line["encoding"]["order"]["field"] == "point_number"
    assert {"calculate": "toNumber(datum.point)", "as": "point_number"} in spec["transform"]
    assert (line["encoding"]["x"]["field"], line["encoding"]["y"]["field"]) == ("fpr", "tpr")
    assert any("curve_label" in n.get("calculate", "") for n in spec["transform"])  # AUROC in the legend


def test_dvc_confusion_plot_is_one_matrix_per_testset_and_revision():
    from dvc_render import VegaRenderer

    props = _evaluate_plots()["reports/plots/${item.model}/confusion.csv"]
    c = confusion_table(_predictions())
    spec = VegaRenderer(_dvc_datapoints(c), "confusion", **{**props, "template": str(REPO / props["template"])}
                        ).get_filled_template()
    assert spec["facet"]["row"]["field"] == "panel" and spec["facet"]["column"]["field"] == "rev"
    # vega-lite runs these before it splits the facets: without rev and panel an imputed empty cell opens an
    # "undefined" facet and counts of one test set land in another
    for step in spec["spec"]["transform"][:3]:
        assert {"rev", "panel"} <= set(step["groupby"]), step


def test_roc_confusion_figure_names_the_model_each_testset_and_the_classes():
    pred = _predictions()
    fig = roc_confusion_figure(pred, _metrics(pred), "resnet18")
    roc, *matrices = fig.axes
    assert "resnet18" in fig._suptitle.get_text()
    curves = [t.get_text() for t in roc.get_legend().get_texts() if "AUROC" in t.get_text() and "chance" not in t.get_text()]
    assert [c.split(":")[0] for c in curves] == ["ISIC test set", "HAM10000 test set"]
    assert [m.get_title().split("\n")[0] for m in matrices] == ["ISIC test set (n=60)", "HAM10000 test set (n=38)"]
    for m in matrices:
        assert [t.get_text() for t in m.get_xticklabels()] == ["benign", "malignant"]
        assert [t.get_text() for t in m.get_yticklabels()] == ["benign", "malignant"]
    plt.close(fig)


def test_an_external_test_set_gets_its_own_panel_after_the_archives_own():
    """ISIC and HAM10000 first, then the external set under its name; the title clears every panel's title."""
    pred = _predictions()
    ext = pred[pred.testset == "isic"].assign(testset="ddi")
    pred = pd.concat([pred, ext], ignore_index=True)
    fig = roc_confusion_figure(pred, _metrics(pred), "resnet18")
    _, *matrices = fig.axes
    assert [m.get_title().split(" (n=")[0] for m in matrices] == ["ISIC test set", "HAM10000 test set",
                                                                  "DDI test set"]
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    assert all(title.y0 >= m.title.get_window_extent().y1 for m in matrices)
    plt.close(fig)


def test_gradcam_figure_has_model_title_colour_bar_and_true_and_predicted_labels():
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16, 3)) for _ in range(3)]
    fig = gradcam_figure(images, rng.random((3, 16, 16)).astype(np.float32), ["benign", "malignant", "malignant"],
                         np.array([0.8, 0.9, 0.1]), 0.5, "vit_tiny_patch16_224")
    assert "vit_tiny_patch16_224" in fig._suptitle.get_text()
    bars = [a for a in fig.axes if a.get_ylabel() == "weight for malignant"]
    assert len(bars) == 1 and len(fig.axes) == 2 * 3 + 1
    # plt.subplots(2, n) lists the axes row by row: the first three are the images, captioned
    captions = [(a.get_title(), a.title.get_color()) for a in fig.axes[:3]]
    assert captions[0] == ("true benign\npred malignant (0.80)", "tab:red")
    assert captions[1] == ("true malignant\npred malignant (0.90)", "tab:green")
    assert captions[2][0] == "true malignant\npred benign (0.10)"
    plt.close(fig)


# --- the ratio study ---

def _study() -> pd.DataFrame:
    """Tidy rows of a small study: 2 models x 2 real fractions x 3 ratios x 3 seeds, every metric."""
    rng = np.random.default_rng(1)
    rows = []
    for model in ("resnet18", "mobilenetv2_100"):
        for frac in (1.0, 0.25):
            for ratio in (0.0, 0.5, 1.0):
                for seed in (1, 2, 3):
                    for ts in ("isic", "ham10000"):
                        for m in METRICS:
                            lo, hi = (0.0, 0.2) if m == "pauc80" else (0.0, 1.0)
                            v = lo + (hi - lo) * (0.6 + 0.1 * ratio * (model == "resnet18") + rng.normal(0, 0.02))
                            rows.append({"model": model, "ratio": ratio, "seed": seed, "data_seed": "42",
                                         "real_fraction": frac, "synthetic_class_mix": "match_real",
                                         "filter": "combined 1", "testset": ts, "metric": m, "value": v,
                                         "run_id": f"{model}{frac}{ratio}{seed}"})
    return pd.DataFrame(rows)


def test_sweep_figure_one_legend_headline_readable_labels_no_overlapping_bands(tmp_path):
    from matplotlib.collections import PolyCollection

    from dermsynth.study_figures import best_effects, line_labels, plot_curves, sweep_figure
    from dermsynth.study_stats import summarise

    s = summarise(_study())
    fig = sweep_figure(s)
    assert len(fig.legends) == 1 and not any(a.get_legend() for a in fig.axes)
    legend = fig.legends[0]
    names = [t.get_text() for t in legend.get_texts()]
    assert len(names) == 4 and not any("filter" in n or "combined" in n for n in names)
    assert "resnet18, 25% of the real training images" in names
    # what every line shares is said once, in words: the filter code "combined 1" nowhere
    assert "synthetic near-copies and blanks dropped" in legend.get_title().get_text()
    labels, shared = line_labels(s)
    assert "synthetic class mix as in the real set" in shared and "resnet18" not in shared
    head = next(a for a in fig.axes if a.get_title().startswith("Headline"))
    best = best_effects(s)
    assert len(best) == 8 and (best[best.model == "resnet18"].ratio == 1.0).all()  # resnet18 gains with ratio
    drawn = sorted(x for line in head.get_lines() for x in line.get_xdata() if line.get_marker() in ("o", "s"))
    assert drawn == pytest.approx(sorted(best.delta))  # the headline shows the best ratio's effect...
    assert len(head.collections) == 8  # ...each with its interval
    auc = next(a for a in fig.axes if a.get_title() == "ISIC: AUROC")
    assert not [c for c in auc.collections if isinstance(c, PolyCollection)]  # bars, not bands
    at_half = sorted(x for line in auc.get_lines() for x in line.get_xdata() if abs(x - 0.5) < 0.05)
    assert len(at_half) == 4 and len(set(np.round(at_half, 6))) == 4  # offset: no two lines' bars coincide
    plt.close(fig)
    plot_curves(s, tmp_path / "sweep.png")  # the CLI's call, unchanged
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_filter_settings_read_as_words():
    from dermsynth.study_figures import filter_title

    assert filter_title("none 1") == "every synthetic image (no filter)"
    assert filter_title("combined 1") == filter_title("flagged 1") == "synthetic near-copies and blanks dropped"
    assert filter_title("realism 0.8") == "near-copies dropped, best 80% kept by realism"


# --- the audit ---

def _pairs(tmp_path: Path, n: int = 12):
    """`n` flagged pairs (12, the stage's default: the old layout's title ran into the captions only on a tall
    sheet); the first two: one flagged by distance, one by hash with its hash twin another image."""
    from PIL import Image

    for name, shade in (("syn", 90), ("real_0", 100), ("real_1", 130)):
        Image.fromarray(np.full((24, 24, 3), shade, np.uint8)).save(tmp_path / f"{name}.png")
    mem = pd.DataFrame({"image_id": [f"syn_{i}" for i in range(n)], "label": "benign", "sampler": "euler",
                        "nn_real_image_id": ["real_0"] + ["real_1"] * (n - 1),
                        "nn_distance": [0.09] + [0.5] * (n - 1),
                        "nn_phash_real_image_id": "real_0", "phash_distance": [14] + [3] * (n - 1), "near_copy": True})
    manifest = pd.DataFrame({"image_id": ["real_0", "real_1"], "path": ["real_0.png", "real_1.png"]})
    synthetic = pd.DataFrame({"image_id": mem.image_id, "path": "syn.png"})
    return mem, manifest, synthetic


def test_near_copy_title_clears_the_first_captions_and_explains_d_and_bits(tmp_path):
    from dermsynth.audit.run import near_copy_sheet

    mem, manifest, synthetic = _pairs(tmp_path)
    fig = near_copy_sheet(mem, manifest, synthetic, 12, tmp_path, distance_max=0.1, phash_max=4)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes[:2]:  # the first pair's captions
        assert not title.overlaps(ax.title.get_window_extent(renderer))
    text = fig._suptitle.get_text().replace("\n", " ")
    assert "Euclidean distance" in text and "standardised" in text and "Hamming distance, of 64" in text
    captions = [a.get_title() for a in fig.axes[1::2]]
    assert captions[0] == "nearest: real_0\nd=0.09, 14 bits\nflagged by d"
    assert captions[1] == "nearest: real_1\nd=0.50, 3 bits (to real_0)\nflagged by bits"  # hash twin named
    plt.close(fig)


def test_ita_histogram_names_every_band_between_its_edges():
    from dermsynth.audit.skin_tone import histogram_figure
    from dermsynth.data.subgroups import ITA_BANDS

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"image_id": range(200), "origin": ["real", "synthetic"] * 100,
                          "label": ["benign"] * 100 + ["malignant"] * 100, "ita": rng.normal(30, 30, 200)})
    fig = histogram_figure(table)
    edges = {name: (low, up) for (low, name), up in zip(ITA_BANDS, [np.inf] + [b for b, _ in ITA_BANDS[:-1]])}
    for ax in fig.axes:
        named = {t.get_text(): t.get_position()[0] for t in ax.texts}
        assert set(named) == {"very light", "light", "intermediate", "tan", "brown", "dark"}
        for name, x in named.items():
            low, up = edges[name.replace(" ", "_")]
            assert low < x < up, name
    plt.close(fig)


def test_example_sheet_has_a_header_over_each_column():
    import cv2

    from dermsynth.data.preprocess import PrepConfig
    from dermsynth.data.sheet import CAPTION, HEADER_SCALE, TILE, before_after, column_headers, wrap_to_width
    from dermsynth.demo.phantom import STYLES, render, sample_lesion

    rng = np.random.default_rng(0)
    raw = render(sample_lesion("benign", rng), STYLES["ham10000"], 160, 120, rng)
    cfg = PrepConfig(size=32)
    plain = before_after([raw], cfg, ["x"])
    expert = before_after([raw], cfg, ["x"], truths=[np.ones(raw.shape[:2], bool)])
    headers = [wrap_to_width(h, TILE - 8) for h in column_headers(32)]
    head_h = max(map(len, headers)) * CAPTION + 4
    assert plain.shape[1] == 3 * TILE and expert.shape[0] > plain.shape[0]  # the magenta line adds a header line
    for i, lines in enumerate(headers):
        band = plain[:head_h - 2, i * TILE:(i + 1) * TILE]
        assert (band < 100).any(axis=2).sum() > 50, f"column {i + 1} has no header"
        assert all(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, HEADER_SCALE, 1)[0][0] <= TILE - 8 for line in lines)
    first, hairs, prepared = column_headers(32)
    assert "field of view" in first and "lesion" in first and "crop" in first and "magenta" not in first
    assert "magenta" in column_headers(32, expert=True)[0]
    assert "hair" in hairs and "32 px" in prepared


# --- the FiftyOne App ---

def test_saved_views_have_descriptions_colours_and_the_slugs_the_docs_give(prepared_session):
    import fiftyone as fo

    from dermsynth.audit.dataset import ORIGIN_COLOURS, build_dataset, view_slug

    root, m = prepared_session
    syn = m[m.split == "train"].head(4).assign(image_id=[f"syn_{i}" for i in range(4)], prompt="p",
                                               negative_prompt="", sampler="euler_a", steps=20, cfg=7.0, seed=range(4))
    test = m[m.split == "test"]
    pred = pd.DataFrame({"image_id": test.image_id, "testset": "isic", "label": (test.label == "malignant").astype(int),
                         "score": 0.4, "pred": 0})
    build_dataset(m, syn, {"vit_tiny_patch16_224": pred}, root, name="dermsynth-test-views")
    ds = fo.load_dataset("dermsynth-test-views")  # as the App finds it: from the database
    info = ds.list_saved_views(info=True)
    assert info and all(v["description"] for v in info)
    docs = (REPO / "docs" / "reading_results.md").read_text()
    slugs = set(re.findall(r"\?view=([a-z0-9-]+)", docs))
    for name in ("real", "synthetic", "near_copies", "filtered_out", "misclassified_vit_tiny_patch16_224",
                 "synthetic_malignant_euler_a"):
        if name not in ds.list_saved_views():
            continue  # a class without synthetic images here
        assert view_slug(name) in slugs, name
        # the App server's own lookup of `?view=` (fiftyone.server.events.initialize.handle_saved_view)
        assert ds._get_saved_view_doc(view_slug(name), slug=True).name == name
    with pytest.raises(ValueError):  # the name with underscores is no URL: the App would fall back silently
        ds._get_saved_view_doc("near_copies", slug=True)
    origin = next(f for f in ds.app_config.color_scheme.fields if f["path"] == "origin")
    assert {v["value"]: v["color"] for v in origin["valueColors"]} == ORIGIN_COLOURS
    assert ds.app_config.color_scheme.color_by == "value"
    ds.delete()
