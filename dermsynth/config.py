"""params.yaml access for stage scripts: each stage reads only its own block."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

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


def from_block(cls: type[T], block: dict[str, Any]) -> T:
    """Build a config dataclass from a params block, refusing unknown keys (typos fail loudly)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(block) - names
    if unknown:
        raise KeyError(f"unknown parameter(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}")
    return cls(**block)


def save_resolved(obj: Any, path: str | Path) -> None:
    """The final resolved config beside an output, so every artefact says how it was made."""
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
    write_json(path, data, default=str)


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
