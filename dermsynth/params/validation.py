"""params.yaml checked against the schema: `validate` (one `key: problem` line per mistake),
the overrides left unused and the timm model names."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dermsynth.params.common import ParamsError, shown
from dermsynth.params.schema import Params


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
