"""Evaluation on the ISIC and HAM10000 test sets: predictions, metrics with CIs, plots, Grad-CAM."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_curve  # noqa: E402

from dermsynth.classify.metrics import binary_metrics, bootstrap_ci, youden_threshold  # noqa: E402
from dermsynth.classify.models import gradcam_target_layer  # noqa: E402
from dermsynth.classify.train import predict  # noqa: E402
from dermsynth.contracts import PREDICTION_COLUMNS  # noqa: E402


def split_test_sets(manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """docs/contracts.md: test rows of ISIC sources form the ISIC test set, those of ham10000 the HAM10000 one."""
    test = manifest[manifest["split"] == "test"]
    sets = {"isic": test[test["source"] != "ham10000"], "ham10000": test[test["source"] == "ham10000"]}
    return {k: v for k, v in sets.items() if len(v)}


def evaluate_model(model: torch.nn.Module, transform, manifest: pd.DataFrame, n_boot: int, seed: int,
                   root: str | Path = ".") -> tuple[pd.DataFrame, dict]:
    """Predictions of every test image and the flat metrics dict (docs/contracts.md keys)."""
    val = manifest[manifest["split"] == "val"]
    y_val = (val["label"] == "malignant").astype(int).to_numpy()
    threshold = youden_threshold(y_val, predict(model, val, transform, root=root))
    preds, metrics = [], {"threshold": threshold}
    for name, df in split_test_sets(manifest).items():
        y = (df["label"] == "malignant").astype(int).to_numpy()
        score = predict(model, df, transform, root=root)
        preds.append(pd.DataFrame({"image_id": df["image_id"].to_numpy(), "testset": name, "label": y, "score": score,
                                   "pred": (score >= threshold).astype(int), "source": df["source"].to_numpy()}))
        for m, v in binary_metrics(y, score, threshold).items():
            metrics[f"{name}_{m}"] = v
        for m, (lo, hi) in bootstrap_ci(y, score, threshold, n_boot, seed).items():
            metrics[f"{name}_{m}_ci95"] = [lo, hi]
        metrics[f"{name}_n"] = int(len(y))
    return pd.concat(preds, ignore_index=True), metrics


def roc_table(pred: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, g in pred.groupby("testset"):
        fpr, tpr, _ = roc_curve(g["label"], g["score"])
        rows.append(pd.DataFrame({"testset": name, "fpr": fpr, "tpr": tpr}))
    return pd.concat(rows, ignore_index=True)


def plot_roc_and_confusion(pred: pd.DataFrame, metrics: dict, title: str, out_png: Path) -> None:
    sets = sorted(pred["testset"].unique())
    fig, axes = plt.subplots(1, 1 + len(sets), figsize=(4.2 * (1 + len(sets)), 4))
    ax = axes[0]
    for name in sets:
        g = pred[pred.testset == name]
        fpr, tpr, _ = roc_curve(g["label"], g["score"])
        ax.plot(fpr, tpr, label=f"{name}: AUROC {metrics[f'{name}_auc']:.3f}, pAUC80 {metrics[f'{name}_pauc80']:.3f}")
    ax.axhline(0.8, ls=":", c="grey")
    ax.plot([0, 1], [0, 1], ls="--", c="lightgrey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC: {title}")
    ax.legend(fontsize=7, loc="lower right")
    for ax, name in zip(axes[1:], sets):
        g = pred[pred.testset == name]
        cm = confusion_matrix(g["label"], g["pred"], labels=[0, 1])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="black")
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["benign", "malignant"], yticklabels=["benign", "malignant"],
               xlabel="predicted", ylabel="true", title=f"{name} (bal. acc {metrics[f'{name}_balanced_accuracy']:.3f})")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def gradcam_grid(model: torch.nn.Module, transform, rows: pd.DataFrame, out_png: Path, root: str | Path = ".") -> None:
    """Grad-CAM heat maps (for ViTs on the last block's tokens) of the malignant logit."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer, is_vit = gradcam_target_layer(model)
    prefix = getattr(model, "num_prefix_tokens", 1) if is_vit else 0

    def reshape(t: torch.Tensor) -> torch.Tensor:  # tokens -> (B, C, H, W)
        t = t[:, prefix:, :]
        side = int(round(t.shape[1] ** 0.5))
        return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    model.eval()
    x = torch.stack([transform(Image.open(Path(root) / p).convert("RGB")) for p in rows["path"]])
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape if is_vit else None) as cam:
        heat = cam(input_tensor=x.to(next(model.parameters()).device), targets=[ClassifierOutputTarget(1)] * len(x))
    fig, axes = plt.subplots(2, len(rows), figsize=(1.6 * len(rows), 3.4))
    axes = np.atleast_2d(axes).reshape(2, -1)
    for i, (p, lab) in enumerate(zip(rows["path"], rows["label"])):
        img = np.asarray(Image.open(Path(root) / p).convert("RGB").resize(heat.shape[1:][::-1])) / 255.0
        axes[0, i].imshow(img)
        axes[0, i].set_title(lab, fontsize=7)
        axes[1, i].imshow(show_cam_on_image(img.astype(np.float32), heat[i], use_rgb=True))
        for a in axes[:, i]:
            a.axis("off")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)

