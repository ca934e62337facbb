"""The classifier-side blocks of params.yaml: train (mixing, per-model overrides), evaluate (external
test sets), the audit of the synthetic set and the filter."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from dermsynth.params.common import (EXTERNAL_LAYOUTS, INTERNAL_TESTSETS, Block, Bool, Count, Fraction,
                                     NonNeg, PosInt, Positive, Str, WeightsFile, Workers, shown)


class Mixing(Block):
    mode: Literal["fixed_size", "add"] = Field(
        "fixed_size", description="fixed_size: the set keeps the real training set's size N, N x (1 - ratio) real "
                                  "and N x ratio synthetic | add: every real image plus synthetic ones until they are "
                                  "ratio of the set (ratio 1 refused)")
    neg_pos_ratio: NonNeg = Field(0.0, description="> 0: negative downsampling of the real images to at most this "
                                                   "many benign per malignant; 0 = all kept")
    synthetic_class_mix: Literal["match_real", "balanced", "minority"] = Field(
        "match_real", description="match_real: the synthetic part has the real part's class mix (the same synthetic "
                                  "share per class) | balanced: 50/50, which makes 'synthetic' a class cue | "
                                  "minority: every real image, plus synthetic ones of the rarer class only until it "
                                  "is minority_target of the set (ratio 0 = none, any ratio > 0 = fill)")
    minority_target: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="synthetic_class_mix minority: the rarer class's share of the training set after adding "
                         "its synthetic images (UFPE: 0.5)")
    pool: Literal["synthetic", "held_out_real"] = Field(
        "synthetic", description="what fills the synthetic slots: synthetic = the synthetic set | held_out_real = the "
                                 "control arm, real training images of the groups real_fraction left out (needs "
                                 "real_fraction < 1): what a perfect generator would give")


class ModelTrain(Block):
    """The training keys one model can override in `train.overrides.<model>`."""

    img_size: Count = Field(0, description="classifier input side in px; 0 = the prepared images' side "
                                           "(data/prepared/config.json; paper: 224)")
    epochs: PosInt = Field(12, description="most epochs (early stopping may end sooner); the best epoch's weights "
                                           "are kept")
    batch_size: PosInt = Field(32, description="images per step, the global batch over all processes")
    lr: Positive = Field(0.001, description="AdamW peak learning rate (cosine schedule per step)")
    min_lr: NonNeg = Field(1.0e-5, description="learning rate the cosine schedule ends at")
    weight_decay: NonNeg = Field(0.05, description="AdamW weight decay")
    warmup_epochs: NonNeg = Field(1.0, description="epochs of linear warm-up from lr / 100 (fractions allowed)")
    drop_rate: Fraction = Field(0.1, description="dropout before the classifier head (timm drop_rate)")
    pretrained_file: WeightsFile = Field(
        "", description="local timm weights (offline; the head and ViT position embeddings are adapted); "
                        "\"\" = random init")
    balanced_batches: Bool = Field(True, description="class-balanced sampling (weighted, with replacement); "
                                                     "false = plain shuffling")
    hflip: Fraction = Field(0.5, description="probability of a horizontal flip (training augmentation)")
    vflip: Fraction = Field(0.5, description="probability of a vertical flip (training augmentation)")
    color_jitter: NonNeg = Field(0.1, description="timm colour jitter of brightness, contrast and saturation; "
                                                  "0 = none")
    scale_min: Annotated[float, Field(gt=0, le=1)] = Field(
        0.8, description="smallest random-resized crop, fraction of the image's area (scale range [scale_min, 1])")
    early_stopping_patience: PosInt = Field(4, description="stop after this many epochs without a better validation "
                                                           "AUROC")
    schedule: Literal["mixed", "synthetic_then_real"] = Field(
        "mixed", description="mixed: one training on the whole real + synthetic set | synthetic_then_real: first the "
                             "synthetic part for pretrain_epochs at lr, then the real part for epochs at finetune_lr "
                             "with early stopping (UFPE's 'initialised on synthetic'); a part with no images is "
                             "skipped, so ratio 0 trains as mixed")
    pretrain_epochs: PosInt = Field(6, description="synthetic_then_real: epochs on the synthetic part (no early "
                                                   "stopping, the last epoch's weights go on)")
    finetune_lr: Positive = Field(0.0003, description="synthetic_then_real: peak learning rate of the real phase "
                                                      "(its own warm-up and cosine schedule)")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto = bf16 autocast on CUDA, fp32 on CPU; fp16 uses loss scaling")
    threads: Count = Field(2, description="CPU threads of torch on CPU, shared by all processes; 0 = torch's default")
    workers: Count = Field(0, description="DataLoader worker processes; 0 = load in the training process")



class Override(ModelTrain):
    # every key optional: only what is given replaces the train block's value
    model_config = ConfigDict(extra="forbid", validate_default=False)


class Train(ModelTrain):
    models: list[Str] = Field(["vit_tiny_patch16_224", "mobilenetv2_100"], min_length=1,
                              description="timm names of the classifiers, one train@<model> stage each (paper: "
                                          "vit_base_patch16_224, mobilenetv2_100)")
    mixing: Mixing = Field(Mixing(), description="how real and synthetic images make up the training set at `ratio`")
    real_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="share of the real training set used, drawn by whole groups (lesion, patient, duplicate) "
                         "per class: the data-limited axis; 1 = all")
    # optional, per model: what differs from the block (train_config@<model> resolves each model's settings,
    # so a change re-runs only the models it changes); an entry for a model not in `models` is unused
    overrides: dict[Str, Override] = Field({"vit_tiny_patch16_224": {}, "mobilenetv2_100": {}},
                                           description="per model: the train keys that differ from this block "
                                                       "({} = none), e.g. {lr: 0.0005}")
    processes: PosInt = Field(1, description="> 1: each model trains under `accelerate launch` (DDP, one process "
                                             "per GPU, or CPU processes); batch_size stays the global batch")

    @model_validator(mode="after")
    def _overrides(self):
        sizes = [("batch_size", self.batch_size)] + [(f"overrides.{m}.batch_size", o.batch_size)
                                                     for m, o in self.overrides.items() if "batch_size" in o.model_fields_set]
        for where, size in sizes:
            if size % self.processes:
                raise ValueError(f"{where}: {size} is the global batch and must divide evenly between "
                                 f"processes={self.processes}")
        if len(set(self.models)) != len(self.models):
            raise ValueError("models: names a model twice")
        if self.mixing.pool == "held_out_real" and self.real_fraction >= 1:
            raise ValueError("mixing.pool: held_out_real fills the synthetic slots with the real groups that "
                             "real_fraction leaves out; at real_fraction 1 there are none (set e.g. 0.25)")
        return self


def _external_folder(path: str) -> str:
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts or any(p.startswith(".") for p in parts):
        raise PydanticCustomError("external_folder", "a folder below <paths.raw>/external/ (no '..', not absolute)")
    return path


class ExternalSet(Block):
    """An external test set: read in its native layout, preprocessed like the training data, never split,
    trained on or shown to the generator; every classifier is evaluated on it."""

    layout: Literal[EXTERNAL_LAYOUTS] = Field(description="the layout it was downloaded in (docs/external_test_sets.md)")
    path: Annotated[StrictStr, AfterValidator(_external_folder)] = Field(
        description="its folder below <paths.raw>/external/, so that data.dvc versions it with the raw data "
                    "and ingest never trains on it")


# a test set's name prefixes its metrics (`<name>_auc`): a plain identifier, not one of the internal sets'
ExternalName = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# an ensemble's name is its metrics file's (reports/metrics/<name>.json) and its run's `model`
EnsembleName = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Evaluate(Block):
    bootstrap: Count = Field(1000, description="resamples for the 95% confidence intervals")
    gradcam_images: PosInt = Field(8, description="per model: a quarter per (test set, class), at least one each")
    external: dict[ExternalName, ExternalSet] = Field(
        default_factory=lambda: {"demo_ddi": ExternalSet(layout="ddi", path="demo_ddi")},
        description="external test sets by name: {name: {layout, path}}; metrics <name>_<metric>; {} = none")
    ensembles: dict[EnsembleName, Annotated[list[Str], Field(min_length=2)]] = Field(
        default_factory=dict,
        description="ensembles evaluated like a model, by name: {name: [model, model, ...]} (two or more of "
                    "train.models): the mean of the members' Platt-calibrated probabilities, threshold on "
                    "validation (stage ensemble@<name>: reports/metrics/<name>.json, reports/ensembles/<name>/, "
                    "an MLflow run); {} = none")

    @model_validator(mode="after")
    def _names(self):
        if clash := sorted(set(self.external) & set(INTERNAL_TESTSETS)):
            raise ValueError(f"external: {clash} name the prepared set's own test sets; choose other names")
        for name, members in self.ensembles.items():
            if len(set(members)) < len(members):
                raise ValueError(f"ensembles.{name}: a member is named twice ({shown(members)})")
        return self


class Audit(Block):
    features: WeightsFile = Field(
        "", description="local standard weights of feature_model (e.g. inception_v3 or a DINOv2 ViT); \"\" = "
                        "feature_model trained once on the real training images")
    feature_model: Str = Field("vit_tiny_patch16_224", description="timm name of the audit's embedder (pooled "
                                                                   "pre-logit features)")
    feature_img_size: Count = Field(0, description="embedder input side in px; 0 = the prepared images' side")
    feature_epochs: PosInt = Field(12, description="epochs of the embedder trained on real images (features \"\" "
                                                   "only)")
    heldout_quantile: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.01, description="a synthetic image is a near-copy when closer to a training image than this quantile of "
                          "the held-out real images' nearest-training distances (0.01 = 1st percentile), or phash_max")
    phash_max: Annotated[int, Field(ge=0, le=64)] = Field(
        4, description="a synthetic image is a near-copy when within this many perceptual-hash bits (of 64) of a "
                       "training image, or by heldout_quantile")
    max_near_copy_rate: Fraction = Field(0.05, description="the audit stage fails when more than this share of the "
                                                           "synthetic images are near-copies")
    knn_k: PosInt = Field(5, description="k of precision / recall / density / coverage (Naeem et al. use 5)")
    kid_subsets: PosInt = Field(50, description="KID: random subsets drawn (seeded by data_seed); the mean and "
                                                "standard deviation of KID over them are reported")
    kid_subset_size: Annotated[int, Field(ge=2)] = Field(
        100, description="KID: images of each set (real, synthetic) per subset; a class with fewer images uses "
                         "its size, and fidelity.json says so (subset_size_reduced_from)")
    near_copy_pairs: Count = Field(12, description="pairs drawn side by side in reports/audit/near_copies.png: "
                                                   "the near-copies, closest first, else the closest (at least one)")
    reconstruction_images: Count = Field(
        500, description="real training images (a seeded sample by class) passed through the base model's VAE to "
                         "measure the classification accuracy score's ceiling (ceiling_auc in fidelity.json); 0 = "
                         "not measured. Generated sets only; about 1 s per image for SD1.5 at 512 px on a CPU")
    visualization: Literal["pca", "tsne"] = Field("pca", description="2-D map of the embeddings in the FiftyOne App")
    workers: Workers = 0

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "kid_subset" in data:  # the one KID key before kid_subsets was a parameter
            raise ValueError(f"kid_subset: renamed kid_subset_size (images per KID subset; kid_subsets is how many "
                             f"subsets) (got {shown(data['kid_subset'])})")
        return data



class FilterParams(Block):
    policy: Literal["none", "flagged", "realism", "label", "combined"] = Field(
        "combined", description="none: keep all | flagged: drop blank images and near-copies | realism, label, "
                                "combined: drop those, then keep the best keep_fraction per class by realism, label "
                                "probability or the mean of both ranks")
    keep_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="share of each class's generated images kept by the scoring policies; 1 = drop only the "
                         "flagged ones")
    knn_k: PosInt = Field(5, description="k of the realism score (distance to the k-th nearest real training image "
                                         "over the real images' median)")

