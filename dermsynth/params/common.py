"""What the blocks of the params.yaml schema share: the allowed names (sources, classes, samplers, ...),
the constrained field types, the `Block` base class and `ParamsError`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr
from pydantic_core import PydanticCustomError

from dermsynth.errors import UserError

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


def shown(value: Any) -> str:
    """A value as an error line shows it: at most SHOWN characters, never formatted whole (reprlib)."""
    import reprlib

    rep = reprlib.Repr()
    rep.maxstring = rep.maxother = SHOWN
    rep.maxlist = rep.maxdict = 8
    r = rep.repr(value)
    return r if len(r) <= SHOWN else r[:SHOWN - 3] + "..."
