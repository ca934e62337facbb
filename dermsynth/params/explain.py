"""What the schema says of a key (`dermsynth check --explain`), and `defaults_from`, which gives the
library configs the schema's defaults."""
from __future__ import annotations

import copy
import dataclasses
import difflib

from pydantic import BaseModel

from dermsynth.params.common import ParamsError
from dermsynth.params.schema import Params


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
                                "dermsynth/params; do not write one here")
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
