"""params.yaml access for stage scripts: each stage reads only its own block."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dermsynth.errors import UserError
from dermsynth.files import find_root, write_json

T = TypeVar("T")


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases (`*name`): a params file needs none, and nested aliases expand
    exponentially (a "billion laughs" of a few lines fills gigabytes before any check runs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: YAML aliases (*{self.peek_event().anchor}) are not "
                                 "accepted; write the value out")
        return super().compose_node(parent, index)


def load_params(path: str | Path = "params.yaml", root: Path | None = None) -> dict[str, Any]:
    """params.yaml validated against the schema (dermsynth.params): every key present, or ParamsError.

    Paths are checked against the repository `root` (default: the one holding the current folder)."""
    from dermsynth.params import ParamsError, validate

    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=_NoAliases)
    except FileNotFoundError:
        raise ParamsError([f"{path}: no such parameters file"]) from None
    except yaml.YAMLError as e:
        raise ParamsError([f"{path}: not valid YAML: {' '.join(str(e).split())}"]) from None
    return validate(raw, str(path), root)


def from_block(cls: type[T], block: dict[str, Any], skip: tuple[str, ...] = (), **extra: Any) -> T:
    """Build a config dataclass from a validated params block and `extra` values (a seed), refusing
    unknown keys (typos fail loudly). `skip` names the block's keys that say how a stage runs, not what
    it makes (threads, processes), which the stage reads itself; YAML lists become the tuples the
    (frozen, hashable) configs hold."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in block.items() if k not in skip} | extra
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"unknown parameter(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) and str(fields[k].type).startswith("tuple") else v
                  for k, v in values.items()})


def save_resolved(obj: Any, path: str | Path) -> None:
    """The final resolved config beside an output, so every artefact says how it was made."""
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    write_json(path, data, default=str)


def prepared_size(prepared_dir: str | Path) -> int:
    """The prepared images' side in px, as preprocess recorded it (`<prepared>/config.json`).

    What every other stage's "0 = the prepared size" means: read from the data it describes, so a stage
    reads its own block of params.yaml and not `prepare.size`."""
    f = Path(prepared_dir) / "config.json"
    try:
        return int(json.loads(f.read_text())["size"])
    except FileNotFoundError:
        raise UserError(f"{f}: missing: the prepared set is not built yet (`dvc repro preprocess`)") from None
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"{f}: no integer 'size' ({type(e).__name__}: {e}); rebuild it with `dvc repro preprocess`") from None


OFFLINE_ENV = Path(__file__).with_name("offline.env")


def offline_environment() -> dict[str, str]:
    """The offline, no-telemetry settings of `offline.env` (which the Makefile includes too)."""
    lines = (line.strip() for line in OFFLINE_ENV.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def configure_environment() -> None:
    """Offline, no-telemetry defaults for every library the pipeline touches; a value already set wins."""
    # FiftyOne's MongoDB lives in the project (the main repository, also for DVC experiments)
    env = offline_environment() | {"FIFTYONE_DATABASE_DIR": str(find_root() / ".fiftyone" / "db")}
    for key, value in env.items():
        os.environ.setdefault(key, value)
