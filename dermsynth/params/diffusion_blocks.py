"""The diffusion blocks of params.yaml: the base model (and its tiny pre-training), the LoRAs and
the synthetic set (generate)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dermsynth.params.common import (CLASSES, SAMPLER_NAMES, SCHEDULERS, Block, Bool, Count, Fraction,
                                     NonNeg, PosInt, Positive, Str)
from dermsynth.synthetic_source import LORA_SOURCE, is_lora_source


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
    caption: Str = Field("a dermoscopic image of a {label} skin lesion, {site}, {skin_tone} skin",
                         description="the UNet's training prompt, one per image: {label}, {site} and {skin_tone} "
                         "are filled from the image's manifest row (dermsynth.traits.caption; a clause of an unknown "
                         "trait is left out), so the base model learns the class and trait words the LoRAs' and "
                         "generation's prompts use; without fields one generic prompt (the LoRAs alone then "
                         "carry the class: on the demo they did not, train-on-synthetic AUROC 0.35)")
    batch_size: PosInt = Field(32, description="images (VAE) or latents (UNet) per step")
    cond_dropout: Fraction = Field(0.1, description="share of the UNet's training images given the empty prompt, so "
                                                    "classifier-free guidance has a baseline")


class TinyArchitecture(Block):
    vae_channels: tuple[PosInt, ...] = Field(
        (16, 32, 64), min_length=2, description="channels of the tiny VAE's levels; each level after the first "
        "halves the side: 3 levels = 4x downsampling (16x16 latents at 64 px), 4 levels = SD1.5's 8x (8x8 latents "
        "at 64 px: about 2x faster UNet, but on the demo its images lost the class)")
    unet_channels: tuple[PosInt, ...] = Field((32, 64), min_length=2, description="channels of the tiny UNet's "
                                              "levels; every level after the first has cross-attention")
    cross_attention_dim: PosInt = Field(32, description="width of the text encoder and of the UNet's cross-attention")
    text_layers: PosInt = Field(2, description="layers of the tiny (random, frozen) CLIP text encoder")

    @model_validator(mode="after")
    def _divisible(self):
        # the group norms (8 groups in the VAE, 16 in the UNet) and the attention heads (4) need these
        for name, values, by in (("vae_channels", self.vae_channels, 8), ("unet_channels", self.unet_channels, 16),
                                 ("cross_attention_dim", (self.cross_attention_dim,), 4)):
            if bad := [v for v in values if v % by]:
                raise ValueError(f"{name}: {bad} not a multiple of {by}")
        return self


class BaseModelParams(Block):
    name: Str = Field("tiny", description="tiny | a local diffusers SD1.5 directory | a local .safetensors/.ckpt")
    config: Str = Field("", description="single-file checkpoints only: a local diffusers directory with the SD1.5 "
                                        "configs and tokenizer; \"\" = none")
    threads: Count = Field(2, description="CPU threads of torch in the base_model stage (pre-training the tiny "
                                          "model); 0 = torch's default")
    tiny: TinyArchitecture = Field(TinyArchitecture(), description="tiny only: the architecture built from config")
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
    caption: Literal["fixed", "attributes"] = Field(
        "fixed", description="fixed: instance_prompt for every training image | attributes: each image's own "
                             "caption from caption_template and its manifest row (harmonised site, ITA skin-tone "
                             "band), so that generation can ask for a site or a skin tone")
    caption_template: Str = Field("a dermoscopic image of sks {label} lesion, {site}, {skin_tone} skin",
                                  description="caption: attributes: {label}, {site}, {skin_tone}; a comma-separated "
                                              "clause whose trait is unknown is left out")
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
    learning_rate: Positive = Field(0.0001, description="AdamW learning rate of the UNet's adapters (paper: 1e-4; "
                                                        "at 1e-3 the demo's LoRAs washed out the class the captioned "
                                                        "base model draws)")
    text_encoder_lr: NonNeg = Field(0.0, description="learning rate of the text encoder's adapters "
                                                     "(train_text_encoder); 0 = learning_rate")
    optimizer: Literal["adamw", "adamw_8bit"] = Field(
        "adamw", description="adamw_8bit: bitsandbytes' 8-bit AdamW (Derm-T2IM's), on CUDA where bitsandbytes is "
                             "installed; elsewhere plain AdamW, said once in the log")
    max_images_per_class: Count = Field(0, description="at most this many training images per class, whole "
                                                       "lesion/patient groups in a seeded order (paper: 1400); 0 = all")
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

    @model_validator(mode="after")
    def _template(self):
        if unknown := sorted(set(re.findall(r"\{(\w*)\}", self.caption_template)) - {"label", "site", "skin_tone"}):
            raise ValueError(f"caption_template: {unknown} are not traits a caption can carry (label, site, skin_tone)")
        return self


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
    attributes: dict[Literal["skin_tone", "site"], Literal["match_real", "uniform"] | dict[Str, NonNeg]] = Field(
        default_factory=dict,
        description="traits the images ask for in their prompts (needs lora.caption: attributes and {skin_tone} / "
                    "{site} in prompt): per trait match_real (the class's real training mix), uniform, or "
                    "{value: share}; each image's asked-for value in metadata.csv's requested_<trait>; {} = none")
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
        if missing := [t for t in self.attributes if "{" + t + "}" not in self.prompt]:
            raise ValueError(f"attributes: {missing} asked for, but prompt has no {{{missing[0]}}} to put them in "
                             f"({self.prompt!r}); e.g. \"a dermoscopic image of sks {{label}} lesion, {{site}}, "
                             "{skin_tone} skin\"")
        if self.n_per_class == 0 and is_lora_source(self.source):
            raise ValueError(f"n_per_class: 0 imports every image of a released set, but generate.source is "
                             f"{LORA_SOURCE} (the LoRAs make a number of images: give one > 0)")
        return self
