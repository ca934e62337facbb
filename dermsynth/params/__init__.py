"""The typed schema of params.yaml: every block, its types, ranges, allowed values and defaults.

This package is the single source of the defaults (the shipped params.yaml holds exactly these values; a
test keeps them equal) and of what each key means. `validate` turns a loaded params.yaml into the
plain dict the stages read, with every key present, or raises `ParamsError` with one line per
problem: `<full.key.path>: <problem> (got <value>)`.

YAML quirks handled here: PyYAML reads `1e-4` as the string '1e-4' (YAML 1.1 wants `1.0e-4`);
number fields accept it. Strings are never booleans: `"false"` is refused, not read as true.

Modules: common (names, field types, `Block`, `ParamsError`), data_blocks, diffusion_blocks and
classify_blocks (the blocks), schema (`Params`, the root), validation (`validate` and the other checks),
explain (`explain`, `defaults_from`). Import from `dermsynth.params`: every name is here.
"""
from dermsynth.params.classify_blocks import (Audit, Evaluate, ExternalName, ExternalSet, FilterParams, Mixing,
                                              ModelTrain, Override, Train)
from dermsynth.params.common import (CLASSES, EXTERNAL_LAYOUTS, INTERNAL_TESTSETS, SAMPLER_NAMES, SCHEDULERS, SHOWN,
                                     SOURCES, WEIGHT_SUFFIXES, Block, Bool, Count, Fraction, NonNeg, ParamsError,
                                     PosInt, Positive, Seed, Str, WeightsFile, Workers, shown)
from dermsynth.params.data_blocks import Ingest, Paths, Prepare, Quality
from dermsynth.params.diffusion_blocks import BaseModelParams, Generate, Lora, Pretrain, TinyArchitecture
from dermsynth.params.explain import defaults_from, explain
from dermsynth.params.schema import Params
from dermsynth.params.validation import check_model_names, unused_overrides, validate

__all__ = [
    "CLASSES", "EXTERNAL_LAYOUTS", "INTERNAL_TESTSETS", "SAMPLER_NAMES", "SCHEDULERS", "SHOWN", "SOURCES",
    "WEIGHT_SUFFIXES", "Bool", "Count", "Fraction", "NonNeg", "PosInt", "Positive", "Seed", "Str", "WeightsFile",
    "Workers", "Block", "ParamsError", "shown",
    "Ingest", "Paths", "Prepare", "Quality",
    "BaseModelParams", "Generate", "Lora", "Pretrain", "TinyArchitecture",
    "Audit", "Evaluate", "ExternalName", "ExternalSet", "FilterParams", "Mixing", "ModelTrain", "Override", "Train",
    "Params",
    "check_model_names", "unused_overrides", "validate",
    "defaults_from", "explain",
]
