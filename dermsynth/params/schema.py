"""`Params`, the root of the params.yaml schema: the top-level keys and one field per block."""
from __future__ import annotations

from pydantic import Field, ValidationInfo, model_validator

from dermsynth.contracts import model_slug
from dermsynth.params.classify_blocks import Audit, Evaluate, FilterParams, Train
from dermsynth.params.common import Block, Fraction, Seed, shown
from dermsynth.params.data_blocks import Ingest, Paths, Prepare, Quality
from dermsynth.params.diffusion_blocks import BaseModelParams, Generate, Lora
from dermsynth.synthetic_source import is_lora_source, source_problems


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
    def _attributes(self):
        if self.generate.attributes and not is_lora_source(self.generate.source):
            raise ValueError(f"generate.attributes: traits are asked of the LoRAs, but generate.source imports "
                             f"{self.generate.source!r}; drop them (-S 'generate.attributes={{}}')")
        if self.generate.attributes and self.lora.caption != "attributes":
            raise ValueError("generate.attributes: the LoRAs never saw the traits' words (lora.caption is fixed); "
                             "set lora.caption: attributes so they learn them from each image's caption")
        return self

    @model_validator(mode="after")
    def _ensemble_members(self):
        for name, members in self.evaluate.ensembles.items():
            if missing := [m for m in members if m not in self.train.models]:
                raise ValueError(f"evaluate.ensembles.{name}: {shown(missing)} not in train.models "
                                 f"({shown(self.train.models)}): an ensemble combines models the pipeline trains")
            if name in {model_slug(m) for m in self.train.models}:
                raise ValueError(f"evaluate.ensembles.{name}: the name is a model's (its metrics file would be "
                                 "overwritten); choose another")
        return self

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
