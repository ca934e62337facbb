"""The data blocks of params.yaml: paths, ingest, prepare and the data gates (quality)."""
from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, model_validator

from dermsynth.isic_vocab import IMAGE_TYPES
from dermsynth.params.common import (SOURCES, Block, Bool, Count, Fraction, NonNeg, PosInt, Str,
                                     Workers)


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
        0.067, description="about this share of the images in the validation split (whole lesion / patient / "
                          "duplicate groups, stratified by source x label)")
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.667, description="about this share of the images in the test split (drawn like val_fraction; held out "
                           "as 1/k of the groups, or all but 1/k above 0.5). The demo's 2/3 gives test sets of "
                           "300+ images each beside ~310 training images; real data: e.g. 0.2 (configs/paper.yaml)")
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
