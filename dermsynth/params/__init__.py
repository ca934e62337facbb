"""The typed schema of params.yaml: every block, its types, ranges, allowed values and defaults.

This is the single source of the defaults (the shipped params.yaml holds exactly these values; a
test keeps them equal) and of what each key means. `validate` turns a loaded params.yaml into the
plain dict the stages read, with every key present, or raises `ParamsError` with one line per
problem: `<full.key.path>: <problem> (got <value>)`.

YAML quirks handled here: PyYAML reads `1e-4` as the string '1e-4' (YAML 1.1 wants `1.0e-4`);
number fields accept it. Strings are never booleans: `"false"` is refused, not read as true.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError,
                      ValidationInfo, model_validator)
from pydantic_core import PydanticCustomError

from dermsynth.isic_vocab import IMAGE_TYPES
from dermsynth.errors import UserError
from dermsynth.synthetic_source import LORA_SOURCE, is_lora_source, source_problems

SOURCES = ("ham10000", "isic2019", "isic2020", "isic2024", "isic_archive")
# layouts of external test sets (dermsynth.data.sources.external reads each), below <paths.raw>/external/
EXTERNAL_LAYOUTS = ("ddi", "pad_ufes_20", "fitzpatrick17k", "milk10k", "csv")
INTERNAL_TESTSETS = ("isic", "ham10000")  # the prepared set's own test sets (dermsynth.classify.evaluate)
CLASSES = ("benign", "malignant")
SAMPLER_NAMES = ("euler", "euler_a", "plms")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "piecewise_constant")

Bool = StrictBool
Str = StrictStr
PosInt = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Workers = Annotated[int, Field(ge=0, description="processes or threads; 0 = all cores")]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="a random seed (what numpy and torch accept)")]
SHOWN = 80  # characters of a refused value an error line shows: a huge value must not flood the terminal


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # what timm's pretrained loader reads (weights_only)


def _weights_file(path: str) -> str:
    if not path:
        return path
    if not Path(path).exists():
        raise PydanticCustomError("no_such_file", "no such file")
    if not Path(path).is_file():
        raise PydanticCustomError("not_a_file", "is a folder, not a weights file")
    if Path(path).suffix not in WEIGHT_SUFFIXES:
        raise PydanticCustomError("not_weights", "not a weights file (expected {suffixes})",
                                  {"suffixes": " or ".join(WEIGHT_SUFFIXES)})
    return path


WeightsFile = Annotated[StrictStr, AfterValidator(_weights_file)]  # "" = none


class ParamsError(UserError):
    """params.yaml does not validate; the message is one `key: problem` line per mistake."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class Block(BaseModel):
    # unknown keys are typos until proven otherwise; defaults are validated like given values; .inf and
    # 1e400 (read as inf) are refused: no learning rate, margin or threshold is meant to be infinite
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class Paths(Block):
    """Where the pipeline reads and writes. The DVC outputs (dermsynth.paths.FIXED) keep their defaults:
    dvc.yaml names them literally; raw and work may move (inside the repository)."""
    raw: Str = Field("data/raw", description="the raw archives, one folder per source, read by ingest (data.dvc "
                                             "versions it; external test sets below <raw>/external/); no output in it")
    interim: Str = Field("data/interim", description="fixed (dvc.yaml names it); ingest's output: the raw "
                                                     "manifest (manifest.csv)")
    prepared: Str = Field("data/prepared", description="fixed (dvc.yaml names it); the prepared set: images/ and "
                                                       "manifest.csv (preprocess; replaced whole on every run)")
    reports: Str = Field("reports", description="fixed (dvc.yaml names it); reports, metrics and plots of every "
                                                "stage (may hold git-tracked files: the committed reports)")
    synthetic: Str = Field("data/synthetic", description="fixed (dvc.yaml names it); the synthetic set: images/ and "
                                                         "metadata.csv (generate; replaced whole on every run)")
    filter: Str = Field("data/filter", description="fixed (dvc.yaml names it); the synthetic images' filter scores "
                                                   "and which are kept")
    testsets: Str = Field("data/testsets", description="fixed (dvc.yaml names it); the external test sets, "
                                                       "preprocessed (evaluate.external)")
    work: Str = Field(".work", description="resumable in-progress state (LoRA checkpoints, generated chunks)")

    @model_validator(mode="after")
    def _confined(self, info: ValidationInfo):
        from dermsynth.files import find_root
        from dermsynth.paths import FIXED, path_problems

        if info.context is None:  # a Paths() built in code; `validate` (every command, every stage) checks
            return self
        # dvc.yaml names these folders literally: DVC would delete whatever a changed output path holds
        # when `dvc exp run -S` checks the workspace out, before any stage (this check included) runs
        moved = [f"{k}: {getattr(self, k)!r} is not {f.default}: the pipeline's output folders are fixed (dvc.yaml "
                 "names them); to hold the data on other storage, move DVC's cache (docs/parameters.md)"
                 for k, f in type(self).model_fields.items()
                 if k in FIXED and os.path.normpath(getattr(self, k)) != f.default]
        if moved:
            raise ValueError("\n".join(moved))
        problems = path_problems(self.model_dump(), info.context.get("root") or find_root())
        if problems:  # each line already names its key: raised as one error, split again by _lines
            raise ValueError("\n".join(p.removeprefix("paths.") for p in problems))
        return self


class Ingest(Block):
    min_size: PosInt = Field(64, description="raw images with a shorter side are quarantined as too small")
    max_quarantine_fraction: Fraction = Field(
        0.25, description="fail the stage when more of the raw items than this are quarantined as broken; items "
                          "set aside by choice (indeterminate, altered, image_types, downloaded again) do not count")
    workers: Workers = 0
    source_priority: list[Literal[SOURCES]] = Field(
        list(SOURCES), min_length=1,
        description="an image several archives publish (same ISIC id, a listed duplicate, identical bytes) is kept "
                    "once, from the first of these; the challenge releases come before isic_archive so that their "
                    "copy and label stay the ones kept (the kept row takes the archive's licence and skin type)")
    max_image_bytes: PosInt = Field(
        67108864, description="raw image files (and hdf5 entries, by the size they declare) larger than this many "
                              "bytes are quarantined as too large without being read (64 MiB)")
    max_pixels: PosInt = Field(
        100_000_000, description="raw images whose header declares more pixels than this are quarantined as too "
                                 "large without being decoded (decompression bombs)")
    indeterminate: Literal["quarantine", "benign", "malignant"] = Field(
        "quarantine", description="ISIC Archive images whose diagnosis_1 is Indeterminate (actinic keratosis, AIMP, "
                                  "atypical Spitz tumour, MELTUMP, ...; legacy benign_malignant indeterminate*): "
                                  "quarantined as 'indeterminate diagnosis', or labelled benign or malignant. The "
                                  "other readers count HAM10000 akiec and ISIC 2019 AK as malignant: 'malignant' "
                                  "matches them, 'benign' makes a republished AK image a label conflict")
    altered: Literal["keep", "quarantine"] = Field(
        "quarantine", description="ISIC Archive images whose image_manipulation is altered (edited after capture): "
                                  "quarantined as 'altered image in archive' by default, because the edit is not "
                                  "what a dermoscope records, altered images differ in malignancy rate (a shortcut "
                                  "a classifier learns) and a LoRA would learn to draw the edits; 'keep' for a "
                                  "collection altered throughout. Synthetic images are always quarantined")
    image_types: list[Literal[IMAGE_TYPES]] = Field(
        ["dermoscopic"], min_length=1,
        description="ISIC Archive image_type values used; any other type is quarantined as \"image type '<type>'\" "
                    "(clinical photographs, TBP tiles and RCM are other modalities than the dermoscopy this "
                    "pipeline models); an image with no image_type recorded is kept")

    @model_validator(mode="after")
    def _unique(self):
        if len(set(self.image_types)) != len(self.image_types):
            raise ValueError("image_types: names a type twice")
        if len(set(self.source_priority)) != len(self.source_priority):
            raise ValueError("source_priority: names a source twice")
        return self


class Prepare(Block):
    size: Annotated[int, Field(ge=16, multiple_of=8)] = Field(64, description="output side in px (paper: 512)")
    hair_removal: Bool = Field(True, description="remove hair before segmentation (DullRazor-like: black-hat, "
                                                 "threshold, long-thin test, inpaint; dermsynth/data/hair.py)")
    hair_kernel: Annotated[float, Field(gt=0, le=0.5)] = Field(
        0.04, description="side of the black-hat's cross-shaped element, fraction of the working image's short side")
    hair_threshold: Annotated[int, Field(ge=1, le=255)] = Field(
        10, description="black-hat response (grey levels) above which a pixel can count as dark hair")
    hair_min_length: Annotated[float, Field(gt=0, le=0.5)] = Field(
        0.06, description="shortest straight stretch of a hair, fraction of the short side: shorter dark "
                          "structures (pigment network, dots, globules) are kept")
    pale_hair_threshold: Annotated[int, Field(ge=0, le=255)] = Field(
        14, description="white top-hat response of pale hairs (grey levels); 0 = dark hairs only")
    inpaint_radius: PosInt = Field(3, description="radius in working px of the inpainting (OpenCV Telea) that "
                                                  "fills the hair mask")
    work_scale: Count = Field(
        4, description="work at work_scale x size px on the short side (larger images are decoded at reduced JPEG "
                       "scale and shrunk first); 0 = at the raw resolution (slow on big images)")
    center: Bool = Field(True, description="crop a square around the segmented lesion; false = always the field of "
                                           "view's largest square (manifest centring: fallback)")
    margin: NonNeg = Field(0.25, description="room around the lesion's bounding box in the crop, per side, as a "
                                             "fraction of the box")
    min_confidence: Fraction = Field(
        0.2, description="lesion segmentation confidence below which the crop is the field of view's "
                         "largest square (manifest centring: fallback) instead of a crop around the lesion")
    color_constancy: Literal["skin_gamut", "shades_of_gray", "none"] = Field(
        "skin_gamut", description="colour constancy before the skin-tone (ITA) measurement; "
                                  "dermsynth/data/colour.py says what each does")
    color_constancy_images: Bool = Field(False, description="apply the colour constancy to the prepared images too")
    max_upscale: NonNeg = Field(
        0.0, description="> 0: a crop is at least size / max_upscale raw px on a side, so no image is "
                         "enlarged more than this (the manifest's upscale column records the factor); 0 = no bound")
    phash_distance: Annotated[int, Field(ge=0, le=64)] = Field(
        4, description="perceptual-hash bits (of 64) within which two images are near-duplicates: kept in one "
                       "split; an external test image this close to a prepared one is quarantined")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.15, description="about this share of the images in the validation split (whole lesion / patient / "
                          "duplicate groups, stratified by source x label)")
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="about this share of the images in the test split (drawn like val_fraction)")
    workers: Workers = 0

    @model_validator(mode="after")
    def _fractions(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction + test_fraction: must leave a training split "
                             f"(got {self.val_fraction} + {self.test_fraction})")
        return self


class Quality(Block):
    min_raw_size: PosInt = Field(64, description="raw gate: every manifest image at least this wide and high (px)")
    min_minority_fraction: Fraction = Field(
        0.1, description="prepared gate: the rarer class's share in each split and each test set (ISIC, HAM10000) "
                         "at least this (real ISIC 2020 alone is ~0.02: lower it there)")
    min_split_rows: Count = Field(10, description="prepared gate: images in each split and each test set at least "
                                                  "this many")
    min_pixel_std: NonNeg = Field(2.0, description="synthetic gate: an image whose pixel standard deviation (0-255) "
                                                   "is below this is blank; the filter drops it too")
    min_pixel_mean: NonNeg = Field(8.0, description="synthetic gate: an image whose mean pixel value (0-255) is below "
                                                    "this is black; the filter drops it too")
    max_subgroup_shift: Fraction = Field(
        0.25, description="prepared gate: a patient group's share (sex, age band, site, skin tone) may differ by at "
                          "most this between the splits (groups with min_subgroup_rows images in every split)")
    min_subgroup_rows: PosInt = Field(20, description="prepared gate: max_subgroup_shift checks a group only where it "
                                                      "has this many images in every split (fewer: its share is noise)")


class Pretrain(Block):
    vae_steps: Count = Field(300, description="AdamW steps fitting the tiny VAE (cosine schedule, 20 warm-up steps)")
    vae_lr: Positive = Field(0.002, description="peak learning rate of the VAE")
    vae_crop: Count = Field(0, description="> 0: the VAE trains on random square crops of this many px; 0 = full "
                                           "images (on crops it lost the class's overall darkness)")
    kl_weight: NonNeg = Field(1.0e-6, description="weight of the KL term in the VAE loss (MSE + 0.5 L1 + "
                                                  "kl_weight x KL)")
    unet_steps: Count = Field(1500, description="AdamW steps fitting the tiny UNet (epsilon prediction, cosine "
                                                "schedule)")
    unet_lr: Positive = Field(0.001, description="peak learning rate of the UNet")
    batch_size: PosInt = Field(32, description="images (VAE) or latents (UNet) per step")
    cond_dropout: Fraction = Field(0.1, description="share of the UNet's training images given the empty prompt, so "
                                                    "classifier-free guidance has a baseline")


class BaseModelParams(Block):
    name: Str = Field("tiny", description="tiny | a local diffusers SD1.5 directory | a local .safetensors/.ckpt")
    config: Str = Field("", description="single-file checkpoints only: a local diffusers directory with the SD1.5 "
                                        "configs and tokenizer; \"\" = none")
    threads: Count = Field(2, description="CPU threads of torch in the base_model stage (pre-training the tiny "
                                          "model); 0 = torch's default")
    pretrain: Pretrain = Field(Pretrain(), description="tiny only: fit the tiny model to the prepared training images "
                                                       "first (VAE, then UNet); ignored for SD1.5")

    @model_validator(mode="after")
    def _local(self):
        if self.name != "tiny" and not Path(self.name).exists():
            raise ValueError(f"name: {self.name!r} is neither 'tiny' nor an existing local path "
                             "(a diffusers directory or a .safetensors/.ckpt file)")
        if self.name != "tiny" and Path(self.name).is_file():
            if Path(self.name).suffix not in (".safetensors", ".ckpt"):
                raise ValueError(f"name: {self.name!r} is a file but not a .safetensors or .ckpt checkpoint")
            if not self.config:
                raise ValueError("config: a single-file checkpoint needs base_model.config, a local diffusers "
                                 "directory with the SD1.5 configs and tokenizer")
        if self.config and not Path(self.config).is_dir():
            raise ValueError(f"config: {self.config!r} is not an existing directory")
        return self


class Lora(Block):
    """DreamBooth + LoRA fine-tuning of the base model, one adapter per class (diffusers + peft)."""

    instance_prompt: Str = Field("a dermoscopic image of sks {label} lesion",
                                 description="caption of every training image; {label} becomes the class, 'sks' "
                                             "is DreamBooth's rare token")
    class_prompt: Str = Field("a dermoscopic image of a skin lesion",
                              description="prompt of the prior-preservation images (prior_preservation)")
    prior_preservation: Bool = Field(False, description="DreamBooth's prior-preservation loss on images the base "
                                                        "model renders from class_prompt")
    prior_loss_weight: NonNeg = Field(1.0, description="weight of the prior-preservation loss")
    num_class_images: PosInt = Field(32, description="prior-preservation images rendered per class")
    rank: PosInt = Field(8, description="LoRA rank r: the adapters' inner dimension (more = more capacity, larger "
                                        "files)")
    alpha: PosInt = Field(16, description="LoRA alpha: the update is scaled by alpha / rank (the adapter metadata "
                                          "records it)")
    target_modules: list[Str] = Field(["to_q", "to_k", "to_v", "to_out.0"], min_length=1,
                                      description="UNet attention projections that get adapters")
    train_text_encoder: Bool = Field(False, description="also train adapters on the CLIP text encoder")
    text_encoder_target_modules: list[Str] = Field(["q_proj", "k_proj", "v_proj", "out_proj"], min_length=1,
                                                   description="text-encoder projections that get adapters")
    learning_rate: Positive = Field(0.001, description="AdamW learning rate (tiny demo model; paper: 1e-4)")
    lr_scheduler: Literal[SCHEDULERS] = Field("constant_with_warmup",
                                              description="diffusers' learning-rate schedule")
    lr_warmup_steps: Count = Field(20, description="steps of linear warm-up")
    adam_weight_decay: NonNeg = Field(0.01, description="AdamW weight decay")
    max_grad_norm: Positive = Field(1.0, description="gradient clipping norm")
    epochs: PosInt = Field(120, description="passes over a class's training images (the paper's 120)")
    max_steps: Count = Field(400, description="> 0 overrides epochs (the demo); 0 = use epochs (paper)")
    batch_size: PosInt = Field(16, description="images per step (paper: 2)")
    gradient_accumulation_steps: PosInt = Field(1, description="steps whose gradients are summed before an update")
    gradient_checkpointing: Bool = Field(False, description="recompute activations to save memory (slower)")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto = fp16 on CUDA, fp32 on CPU; the LoRA weights stay fp32")
    checkpoint_every: PosInt = Field(100, description="steps between resumable checkpoints (.work/lora/)")
    keep_checkpoints: PosInt = Field(2, description="checkpoints kept; older ones are deleted")
    flip_augment: Bool = Field(True, description="train on horizontal and vertical flips too")
    validation_images: Count = Field(8, description="sample images rendered after training "
                                                    "(reports/lora/<class>/samples.png)")
    threads: Count = Field(2, description="CPU threads for torch on CPU")


class Generate(Block):
    source: Str = Field(
        LORA_SOURCE, description="models/lora = sample the LoRAs this pipeline trains; anything else imports a "
                                 "released synthetic set instead: a folder with one subfolder per class (benign/, "
                                 "malignant/) or a CSV file of path,label[,prompt,seed,...] rows (paths relative to "
                                 "the CSV's folder). A path inside the repository (the set may be a link to another "
                                 "disk), so dvc.lock and metadata.csv name the same place on every clone and "
                                 "`dvc add` can version it; absolute paths are refused")
    n_per_class: Count = Field(3000, description="images per class; for an imported set, that many drawn per class "
                                                 "(seeded by data_seed) or 0 = every image it holds")
    classes: list[Literal[CLASSES]] = Field(list(CLASSES), min_length=1,
                                            description="classes of the synthetic set, each from its LoRA "
                                                        "(models/lora/<class>); an imported set: the classes read")
    samplers: list[Literal[SAMPLER_NAMES]] = Field(
        list(SAMPLER_NAMES), min_length=1,
        description="diffusers samplers, assigned round-robin by image index: euler, euler_a (ancestral), plms "
                    "(PNDM without Runge-Kutta warm-up); paper: all three")
    steps_min: PosInt = Field(20, description="fewest denoising steps: each image's steps are drawn from "
                                              "[steps_min, steps_max] (paper: 20-26)")
    steps_max: PosInt = Field(26, description="most denoising steps (see steps_min)")
    guidance_scale: NonNeg = Field(7.0, description="classifier-free guidance scale (paper: 7)")
    prompt: Str = Field("a dermoscopic image of sks {label} lesion",
                        description="prompt of every image; {label} becomes the class (the default is "
                                    "lora.instance_prompt's)")
    negative_prompt: Str = Field(
        "", description="negative prompt of the guidance; \"\" = the empty prompt (the tiny model never learnt the "
                        "paper's words; paper: \"blurry, lowres, low quality, cartoon, drawing, text, watermark\")")
    batch_size: PosInt = Field(160, description="images per chunk (one sampler call): the chunks of each (class, "
                                                "sampler, steps) group are fixed, so a resume makes the same bytes")
    threads: Count = Field(2, description="CPU threads of the sampler; for an imported set, the processes decoding "
                                          "it (0 = all cores)")
    dtype: Literal["auto", "fp16", "bf16", "fp32", "float16", "bfloat16", "float32"] = Field(
        "auto", description="dtype of the pipeline; auto = fp16 on CUDA, fp32 on CPU")
    channels_last: Bool = Field(True, description="UNet in channels-last memory layout")
    compile: Bool = Field(False, description="torch.compile the UNet (pays off on GPU for thousands of images)")
    max_reseeds: Count = Field(3, description="NaN or black renders drawn again from a derived seed, at most this "
                                              "often; one still bad stays black and fails the synthetic gate")
    processes: PosInt = Field(1, description="> 1: the stage runs under `accelerate launch` (one per GPU, or CPU "
                                             "processes); every image is the same for any number")

    @model_validator(mode="after")
    def _steps(self):
        if self.steps_min > self.steps_max:
            raise ValueError(f"steps_min: larger than steps_max ({self.steps_min} > {self.steps_max})")
        if self.n_per_class == 0 and is_lora_source(self.source):
            raise ValueError(f"n_per_class: 0 imports every image of a released set, but generate.source is "
                             f"{LORA_SOURCE} (the LoRAs make a number of images: give one > 0)")
        return self


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

    img_size: Count = Field(0, description="classifier input side in px; 0 = prepare.size (paper: 224)")
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


class Evaluate(Block):
    bootstrap: Count = Field(1000, description="resamples for the 95% confidence intervals")
    gradcam_images: PosInt = Field(8, description="per model: a quarter per (test set, class), at least one each")
    external: dict[ExternalName, ExternalSet] = Field(
        default_factory=lambda: {"demo_ddi": ExternalSet(layout="ddi", path="demo_ddi")},
        description="external test sets by name: {name: {layout, path}}; metrics <name>_<metric>; {} = none")

    @model_validator(mode="after")
    def _names(self):
        if clash := sorted(set(self.external) & set(INTERNAL_TESTSETS)):
            raise ValueError(f"external: {clash} name the prepared set's own test sets; choose other names")
        return self


class Audit(Block):
    features: WeightsFile = Field(
        "", description="local standard weights of feature_model (e.g. inception_v3 or a DINOv2 ViT); \"\" = "
                        "feature_model trained once on the real training images")
    feature_model: Str = Field("vit_tiny_patch16_224", description="timm name of the audit's embedder (pooled "
                                                                   "pre-logit features)")
    feature_img_size: Count = Field(0, description="embedder input side in px; 0 = prepare.size")
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


class Params(Block):
    seed: Seed = 42
    data_seed: Seed = 42
    ratio: Fraction = Field(0.5, description="fraction of synthetic images in each classifier's training set: 0 = "
                                             "real only, 0.5 = 1:1, 0.75 = 1:3, 1 = synthetic only (train.mixing)")
    paths: Paths = Field(default_factory=dict,  # validated with the repository as context
                         description="where each stage reads and writes, relative to the repository "
                                     "(docs/parameters.md: every output must lie inside it)")
    ingest: Ingest = Field(Ingest(), description="stage ingest: the raw archives read into one manifest; what is "
                                                 "quarantined, which copy of a duplicate is kept")
    prepare: Prepare = Field(Prepare(), description="stage preprocess: hair removal, lesion crop, skin tone, resize, "
                                                    "near-duplicates and the leak-free splits")
    quality: Quality = Field(Quality(), description="the data gates (Great Expectations) on the raw manifest, the "
                                                    "prepared set and the synthetic set")
    base_model: BaseModelParams = Field(BaseModelParams(), description="the diffusion model the LoRAs fine-tune "
                                                                       "(stage base_model -> models/base)")
    lora: Lora = Field(Lora(), description="DreamBooth + LoRA fine-tuning of the base model, one adapter per class "
                                           "(stage train_lora)")
    generate: Generate = Field(Generate(), description="stage generate: the synthetic set, sampled from the LoRAs "
                                                       "or imported from a released set")
    train: Train = Field(Train(), description="the classifiers (timm), trained on the real + synthetic mix at ratio")
    evaluate: Evaluate = Field(Evaluate(), description="stage evaluate@<model>: metrics with bootstrap intervals on "
                                                       "the ISIC, HAM10000 and external test sets, Grad-CAM")
    audit: Audit = Field(Audit(), description="memorisation and fidelity of the synthetic set in a fixed feature "
                                              "space, and the FiftyOne dataset")
    filter: FilterParams = Field(FilterParams(), description="weak synthetic images dropped before the classifiers "
                                                             "draw from them (dermsynth/filter.py)")

    @model_validator(mode="after")
    def _generate_source(self, info: ValidationInfo):
        from dermsynth.files import find_root

        if info.context is None or is_lora_source(self.generate.source):
            return self  # the LoRAs are train_lora's outputs: they need not exist before DVC makes them
        problems = source_problems(self.generate.source, self.generate.classes,
                                   info.context.get("root") or find_root(), self.paths.model_dump())
        if problems:
            raise ValueError("\n".join(f"generate.source: {p}" for p in problems))
        return self


def shown(value: Any) -> str:
    """A value as an error line shows it: at most SHOWN characters, never formatted whole (reprlib)."""
    import reprlib

    rep = reprlib.Repr()
    rep.maxstring = rep.maxother = SHOWN
    rep.maxlist = rep.maxdict = 8
    r = rep.repr(value)
    return r if len(r) <= SHOWN else r[:SHOWN - 3] + "..."


def _lines(err: dict, known: dict[tuple, list[str]]) -> list[str]:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc)
    given = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(loc[-1], known.get(loc[:-1], []), n=1)
        return [f"{key}: unknown key" + (f"; did you mean '{near[0]}'?" if near else
                                         f" (known: {', '.join(known.get(loc[:-1], []))})")]
    if kind == "value_error":  # our validators: "<subkey>: problem" lines, already naming the value
        return [f"{key + '.' if key else ''}{line}" for line in str(err["ctx"]["error"]).splitlines()]
    msg = err["msg"]
    if kind == "bool_type" and isinstance(given, str):
        msg += f"; write {given.strip().lower()} without quotes" if given.strip().lower() in ("true", "false") else ""
    if kind == "literal_error":
        msg = msg.replace("Input should be", "must be")
    if kind == "finite_number":
        msg = "must be a finite number"
    return [f"{key}: {msg} (got {shown(given)})"]


def _known_keys(model: type[BaseModel], prefix: tuple = ()) -> dict[tuple, list[str]]:
    out = {prefix: list(model.model_fields)}
    for name, f in model.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out |= _known_keys(f.annotation, prefix + (name,))
    return out


def validate(raw: dict[str, Any] | None, where: str = "params.yaml", root: Path | None = None) -> dict[str, Any]:
    """The validated parameters as a plain dict with every key present; ParamsError otherwise.

    `root`: the repository the paths are relative to (default: dermsynth.files.find_root())."""
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError([f"{where}: must be a mapping of blocks (got {type(raw).__name__})"])
    try:
        p = Params.model_validate(raw or {}, context={"root": root})
    except ValidationError as e:
        known = _known_keys(Params)
        raise ParamsError([line for err in e.errors(include_url=False) for line in _lines(err, known)]) from None
    out = p.model_dump(mode="python")
    # an override replaces only the keys it gives
    out["train"]["overrides"] = {m: o.model_dump(exclude_unset=True) for m, o in p.train.overrides.items()}
    return out


def unused_overrides(params: dict[str, Any]) -> list[str]:
    """`train.overrides` entries of models not in `train.models` (kept for later, or a typo): said, not refused."""
    return [f"train.overrides.{m}: not in train.models, unused" for m in params["train"]["overrides"]
            if m not in params["train"]["models"]]


def check_model_names(params: dict[str, Any]) -> None:
    """timm must know every classifier and the audit embedder (imports timm: ~1 s)."""
    import timm

    bad = [(f"train.models[{i}]", m) for i, m in enumerate(params["train"]["models"]) if not timm.is_model(m)]
    if not timm.is_model(params["audit"]["feature_model"]):
        bad.append(("audit.feature_model", params["audit"]["feature_model"]))
    if bad:
        raise ParamsError([f"{k}: timm has no model {m!r}" + (
            f"; did you mean {difflib.get_close_matches(m, timm.list_models(), n=1)[0]!r}?"
            if difflib.get_close_matches(m, timm.list_models(), n=1) else "") for k, m in bad])


_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def _kind(s: dict, defs: dict) -> str:
    """A JSON-schema node in words: its type, allowed values or pattern, and bounds."""
    s = defs[s["$ref"].split("/")[-1]] if "$ref" in s else s
    if "enum" in s or "const" in s:
        return "one of " + ", ".join(map(repr, s.get("enum", [s.get("const")])))
    if "anyOf" in s:
        return " or ".join(_kind(x, defs) for x in s["anyOf"])
    kind = {"integer": "integer", "number": "number", "string": "string", "boolean": "true/false",
            "array": "list", "object": "mapping"}.get(s.get("type"), s.get("title", "value"))
    if s.get("type") == "array" and "items" in s:
        kind = f"list of {_kind(s['items'], defs)}"
    if "pattern" in s:
        kind += f" matching {s['pattern']}"
    bounds = [f"{op} {s[k]}" for k, op in _BOUNDS if k in s]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def explain(key: str) -> str:
    """What the schema says of a dotted params key: its type and range, default and meaning (from the field's
    description); a block lists its keys. `evaluate.external.<name>.layout` reads any name."""
    schema = Params.model_json_schema()
    defs, node, default, path = schema["$defs"], schema, None, []
    for part in key.split(".") if key else []:
        node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
        props = node.get("properties", {})
        if part in props:
            default = props[part].get("default", default[part] if isinstance(default, dict) and part in default
                                      else None)
            node = props[part]
        elif "patternProperties" in node or isinstance(node.get("additionalProperties"), dict):
            node = next(iter(node.get("patternProperties", {}).values()), node.get("additionalProperties"))
            default = None
        else:
            near = difflib.get_close_matches(part, list(props), n=1)
            raise ParamsError([f"{'.'.join(path + [part])}: unknown key" + (f"; did you mean {near[0]!r}?" if near
                                                                               else f"; known: {', '.join(props)}")])
        path.append(part)
    block = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
    leaf = "properties" not in block  # a block's default is its keys' defaults, listed below it
    lines = [f"{key or 'params.yaml'}: {_kind(node, defs)}" + (f", default {default!r}" if leaf and default is not None
                                                                else "")]
    if node.get("description") or block.get("description"):
        lines.append("  " + (node.get("description") or " ".join(block["description"].split())))
    if "properties" in block:
        lines += [f"  {k}: {_kind(v, defs)}" for k, v in block["properties"].items()]
    return "\n".join(lines)


def defaults_from(*blocks: type[BaseModel], required: tuple[str, ...] = ()):
    """Class decorator under `@dataclass`: each field of a library config that a schema block also has
    takes that block's default (the first block naming it; lists become tuples), so a config built in a
    notebook without params is the one `dvc repro` builds. The schema is the one source of a default:
    a field that writes its own default is refused, and `required` names fields left without one."""

    def apply(cls: type) -> type:
        for name in cls.__dict__.get("__annotations__", {}):
            block = next((b for b in blocks if name in b.model_fields), None)
            if block is None or name in required:
                continue
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{name}: the default is {block.__name__}.{name}'s in "
                                "dermsynth/params.py; do not write one here")
            value = block.model_fields[name].get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump()
            if isinstance(value, list):
                value = tuple(value)
            if isinstance(value, dict):  # mutable: each instance gets its own copy
                value = dataclasses.field(default_factory=lambda v=value: copy.deepcopy(v))
            setattr(cls, name, value)
        return cls

    return apply
