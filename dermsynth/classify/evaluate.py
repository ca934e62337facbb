"""Evaluation on the ISIC and HAM10000 test sets: predictions, metrics with CIs, plots, Grad-CAM."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve  # noqa: E402

from dermsynth.classify.metrics import binary_metrics, bootstrap_ci, youden_threshold  # noqa: E402
from dermsynth.classify.models import gradcam_target_layer  # noqa: E402
from dermsynth.classify.train import predict  # noqa: E402
from dermsynth.contracts import VAL_PREDICTION_COLUMNS  # noqa: E402
from dermsynth.plotting import save_figure  # noqa: E402
from dermsynth.testset_names import in_order, testset_name  # noqa: E402


def split_test_sets(manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """docs/contracts.md: test rows of ISIC sources form the ISIC test set, those of ham10000 the HAM10000 one."""
    test = manifest[manifest["split"] == "test"]
    sets = {"isic": test[test["source"] != "ham10000"], "ham10000": test[test["source"] == "ham10000"]}
    return {k: v for k, v in sets.items() if len(v)}


def score_sets(y_val: np.ndarray, val_score: np.ndarray, sets: dict[str, tuple[pd.DataFrame, np.ndarray]],
               n_boot: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Predictions and the flat metrics dict (docs/contracts.md keys) of scores on each test set `name ->
    (rows, score)`, at the threshold chosen on the validation scores (Youden's J): a model's or an ensemble's."""
    threshold = youden_threshold(y_val, val_score)
    preds, metrics = [], {"threshold": threshold}
    for name, (df, score) in sets.items():
        y = (df["label"] == "malignant").astype(int).to_numpy()
        preds.append(pd.DataFrame({"image_id": df["image_id"].to_numpy(), "testset": name, "label": y, "score": score,
                                   "pred": (score >= threshold).astype(int), "source": df["source"].to_numpy()}))
        for m, v in binary_metrics(y, score, threshold).items():
            metrics[f"{name}_{m}"] = v
        for m, (lo, hi) in bootstrap_ci(y, score, threshold, n_boot, seed).items():
            metrics[f"{name}_{m}_ci95"] = [lo, hi]
        metrics[f"{name}_n"] = int(len(y))
    return pd.concat(preds, ignore_index=True), metrics


def evaluate_model(model: torch.nn.Module, transform, manifest: pd.DataFrame, n_boot: int, seed: int,
                   root: str | Path = ".", external: dict[str, pd.DataFrame] | None = None
                   ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Predictions of every test image and the flat metrics dict (docs/contracts.md keys): the prepared set's
    test sets, then each `external` test set by its name, all at the threshold chosen on validation; and
    the validation predictions that chose it (an ensemble calibrates its members on them)."""
    val = manifest[manifest["split"] == "val"]
    y_val = (val["label"] == "malignant").astype(int).to_numpy()
    val_score = predict(model, val, transform, root=root)
    sets = {name: (df, predict(model, df, transform, root=root))
            for name, df in (split_test_sets(manifest) | (external or {})).items()}
    pred, metrics = score_sets(y_val, val_score, sets, n_boot, seed)
    val_pred = pd.DataFrame(dict(zip(VAL_PREDICTION_COLUMNS, (val["image_id"].to_numpy(), y_val, val_score))))
    return pred, metrics, val_pred


# what a reader calls each class (the CSV codes are 0 / 1)
CLASS_NAMES = ("benign", "malignant")
# reports/plots/<model>/roc.csv, drawn by configs/dvc_plots/roc.json: one curve per test set, in `point` order
ROC_COLUMNS = ["testset", "panel", "curve_label", "point", "fpr", "tpr", "threshold"]
# reports/plots/<model>/confusion.csv, drawn by configs/dvc_plots/confusion.json: one row per test image
CONFUSION_COLUMNS = ["testset", "panel", "actual", "predicted"]


def testset_title(name: str) -> str:
    return f"{testset_name(name)} test set"


def roc_steps(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and threshold of the empirical ROC curve, from (0, 0) to (1, 1), both never decreasing.

    scikit-learn's points are the curve's corners (drop_intermediate only drops points in the middle of
    a straight run), so joining them in order with straight lines draws the exact step curve; scores tied
    across the classes give the diagonal the curve really has there. The threshold of (0, 0) is NaN:
    no score is above it (scikit-learn writes inf, which a CSV and a JSON plot cannot carry)."""
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=True)
    thr = np.where(np.isfinite(thr), thr, np.nan)
    if fpr[0] != 0.0 or tpr[0] != 0.0:  # scikit-learn starts at (0, 0) today; the plots must not depend on it
        fpr, tpr, thr = np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.nan, thr]
    if fpr[-1] != 1.0 or tpr[-1] != 1.0:
        fpr, tpr, thr = np.r_[fpr, 1.0], np.r_[tpr, 1.0], np.r_[thr, np.nan]
    return fpr, tpr, thr


def _both_classes(g: pd.DataFrame) -> bool:
    return g["label"].nunique() == 2  # one class only: no ROC curve and no AUROC (metrics are NaN)


def roc_table(pred: pd.DataFrame) -> pd.DataFrame:
    """One monotone ROC curve per test set (ROC_COLUMNS), for `dvc plots` (configs/dvc_plots/roc.json)."""
    rows = []
    for name, g in pred.groupby("testset"):
        if not _both_classes(g):
            continue
        fpr, tpr, thr = roc_steps(g["label"].to_numpy(), g["score"].to_numpy())
        label = f"AUROC {roc_auc_score(g['label'], g['score']):.3f} (n={len(g)}, {int(g['label'].sum())} malignant)"
        rows.append(pd.DataFrame({"testset": name, "panel": testset_title(name), "curve_label": label,
                                  "point": np.arange(len(fpr)), "fpr": fpr, "tpr": tpr, "threshold": thr.round(6)}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=ROC_COLUMNS)


def confusion_table(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per test image with its true (`actual`) and predicted class by name (CONFUSION_COLUMNS), for `dvc plots`:
    the template counts them per test set, so no matrix mixes ISIC and HAM10000 images."""
    return pd.DataFrame({"testset": pred["testset"].to_numpy(),
                         "panel": [testset_title(t) for t in pred["testset"]],
                         "actual": [CLASS_NAMES[int(v)] for v in pred["label"]],
                         "predicted": [CLASS_NAMES[int(v)] for v in pred["pred"]]}, columns=CONFUSION_COLUMNS)


def _ci(metrics: dict, key: str) -> str:
    lo_hi = metrics.get(f"{key}_ci95")
    return f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi is not None and np.isfinite(lo_hi).all() else ""


def _draw_roc(ax, pred: pd.DataFrame, metrics: dict, sets: list[str]) -> None:
    for name in sets:
        g = pred[pred.testset == name]
        if not _both_classes(g):
            continue
        fpr, tpr, _ = roc_steps(g["label"].to_numpy(), g["score"].to_numpy())
        line = ax.plot(fpr, tpr, lw=1.6, label=f"{testset_title(name)}: AUROC {metrics[f'{name}_auc']:.3f}"
                       f"{_ci(metrics, f'{name}_auc')}, n={len(g)}")[0]
        # where the thresholded predictions (and the confusion matrix beside) sit on the curve
        ax.plot(1 - metrics[f"{name}_specificity"], metrics[f"{name}_sensitivity"], "o", color=line.get_color(), ms=6,
                mfc="white", mew=1.5)
    ax.plot([0, 1], [0, 1], ls="--", c="lightgrey", lw=1, label="chance (AUROC 0.5)")
    ax.axhline(0.8, ls=":", c="grey", lw=0.8, label="sensitivity 0.8 (pAUC80 is the area above)")
    ax.plot([], [], "o", color="grey", mfc="white", label="the threshold's operating point")
    ax.set(xlabel="1 - specificity (benign called malignant)", ylabel="sensitivity (malignant found)",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal", title="ROC, one curve per test set")
    # below the axes: inside, it hides the curves' lower left, where the high-specificity end is read
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def _draw_confusion(ax, g: pd.DataFrame, metrics: dict, name: str) -> None:
    cm = confusion_matrix(g["label"], g["pred"], labels=[0, 1])
    # colour by the share of each true class, so the small malignant row is as readable as the benign one
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v}\n({share[i, j]:.0%} of {CLASS_NAMES[i]})", ha="center", va="center", fontsize=8,
                color="white" if share[i, j] > 0.6 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES, xlabel="predicted",
           ylabel="true", title=f"{testset_title(name)} (n={len(g)})\nsensitivity {metrics[f'{name}_sensitivity']:.2f}, "
           f"specificity {metrics[f'{name}_specificity']:.2f}, bal. acc. {metrics[f'{name}_balanced_accuracy']:.2f}")
    ax.title.set_fontsize(9)


def roc_confusion_figure(pred: pd.DataFrame, metrics: dict, model: str) -> plt.Figure:
    """ROC curves of every test set beside one confusion matrix per test set (benign / malignant)."""
    sets = in_order(pred["testset"])  # ISIC, HAM10000, then the external sets, as in the metrics
    fig, axes = plt.subplots(1, 1 + len(sets), figsize=(4.6 * (1 + len(sets)), 5.2), squeeze=False)
    _draw_roc(axes[0, 0], pred, metrics, sets)
    for ax, name in zip(axes[0, 1:], sets):
        _draw_confusion(ax, pred[pred.testset == name], metrics, name)
    fig.suptitle(f"{model}: test-set ROC and confusion matrices (threshold {metrics['threshold']:.3f}, chosen on "
                 "validation by Youden's J)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # tight_layout leaves no room for the suptitle above two-line titles
    return fig


def plot_roc_and_confusion(pred: pd.DataFrame, metrics: dict, title: str, out_png: Path) -> None:
    # "tight" keeps the legend below the ROC axes
    save_figure(roc_confusion_figure(pred, metrics, title), out_png, dpi=110, bbox_inches="tight")


GRADCAM_CMAP = "jet"  # pytorch_grad_cam's show_cam_on_image colours with OpenCV's JET: the colour bar matches


def gradcam_figure(images: list[np.ndarray], heat: np.ndarray, labels: list[str], scores: np.ndarray,
                   threshold: float, model: str) -> plt.Figure:
    """Each image over its Grad-CAM map, captioned with its true class, the prediction and the score."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 1.0, 3.9), squeeze=False, layout="constrained")
    for i, (img, lab, score) in enumerate(zip(images, labels, scores)):
        pred = CLASS_NAMES[int(score >= threshold)]
        axes[0, i].imshow(img)
        # green when right, red when wrong: the errors are what a reader looks for
        axes[0, i].set_title(f"true {lab}\npred {pred} ({score:.2f})", fontsize=7,
                             color="tab:green" if pred == lab else "tab:red")
        axes[1, i].imshow(show_cam_on_image(img.astype(np.float32), heat[i], use_rgb=True))
        for a in axes[:, i]:
            a.set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("Grad-CAM", fontsize=8)
    sm = ScalarMappable(norm=Normalize(0, 1), cmap=GRADCAM_CMAP)
    bar = fig.colorbar(sm, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)  # both rows: they stay aligned
    bar.set_label("weight for malignant", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"{model}: Grad-CAM of the malignant score (score = P(malignant); malignant when >= "
                 f"{threshold:.3f})", fontsize=9)
    return fig


def gradcam_grid(model: torch.nn.Module, transform, rows: pd.DataFrame, out_png: Path, root: str | Path = ".",
                 model_name: str = "", threshold: float = 0.5) -> None:
    """Grad-CAM heat maps (for ViTs on the last block's tokens) of the malignant logit; `threshold` is the
    one the predictions use (metrics' `threshold`), so each caption's predicted class is the pipeline's."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer, is_vit = gradcam_target_layer(model)
    prefix = getattr(model, "num_prefix_tokens", 1) if is_vit else 0

    def reshape(t: torch.Tensor) -> torch.Tensor:  # tokens -> (B, C, H, W)
        t = t[:, prefix:, :]
        side = int(round(t.shape[1] ** 0.5))
        return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    model.eval()
    x = torch.stack([transform(Image.open(Path(root) / p).convert("RGB")) for p in rows["path"]])
    x = x.to(next(model.parameters()).device)
    with torch.no_grad():
        scores = torch.softmax(model(x).float(), dim=1)[:, 1].cpu().numpy()  # as train.predict scores
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape if is_vit else None) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * len(x))
    images = [np.asarray(Image.open(Path(root) / p).convert("RGB").resize(heat.shape[1:][::-1])) / 255.0
              for p in rows["path"]]
    name = model_name or type(model).__name__
    save_figure(gradcam_figure(images, heat, list(rows["label"]), scores, threshold, name), out_png, dpi=110)
