"""params.yaml, configs/paper.yaml and dvc.yaml agree with each other and with the code."""
from pathlib import Path

import pytest
import yaml

import stages.generate
import stages.train_lora
from dermsynth.audit.run import PARAM_KEYS, AuditConfig
from dermsynth.classify.mixing import MixConfig
from dermsynth.classify.train import TrainConfig
from dermsynth.config import from_block
from dermsynth.data.preprocess import PrepConfig
from dermsynth.diffusion.lora import LoraTrainConfig
from dermsynth.diffusion.pretrain import PretrainConfig
from dermsynth.diffusion.sample import GenerateConfig
from dermsynth.quality.suites import QualityConfig

ROOT = Path(__file__).resolve().parents[2]
AUDIT_KEYS = set(PARAM_KEYS)


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict) and k not in ("overrides", "external"):  # entries named by the user
            out |= _keys(v, prefix + k + ".")
    return out


def test_paper_config_has_the_same_keys_as_params():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    assert _keys(params) == _keys(paper)
    assert paper["prepare"]["size"] == 512 and paper["lora"]["batch_size"] == 2 and paper["lora"]["epochs"] == 120
    assert paper["lora"]["learning_rate"] == 1e-4 and paper["generate"]["guidance_scale"] == 7.0


def test_every_block_builds_its_config():
    for f in ("params.yaml", "configs/paper.yaml"):
        p = yaml.safe_load((ROOT / f).read_text())
        prep = {k: v for k, v in p["prepare"].items() if k not in ("val_fraction", "test_fraction", "phash_distance", "workers")}
        from_block(PrepConfig, prep)
        from_block(QualityConfig, p["quality"])
        from_block(PretrainConfig, p["base_model"]["pretrain"])
        # the stages' own skips: how a stage runs (threads, processes) and which images (the LoRA's cap, the source)
        from_block(LoraTrainConfig, p["lora"], skip=stages.train_lora.STAGE_KEYS)
        from_block(GenerateConfig, p["generate"], skip=stages.generate.STAGE_KEYS)
        t = {k: v for k, v in p["train"].items() if k not in ("models", "mixing", "overrides", "img_size", "real_fraction", "processes")}
        from_block(TrainConfig, t)
        from_block(MixConfig, {**p["train"]["mixing"], "real_fraction": p["train"]["real_fraction"]})
        from_block(AuditConfig, {k: v for k, v in p["audit"].items() if k in AUDIT_KEYS})
        assert 0 <= p["ratio"] <= 1


def test_ratio_is_read_only_by_the_classifier_side():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    readers = {name for name, st in dvc["stages"].items() if "ratio" in (st.get("params") or [])}
    assert readers == {"train", "cards"}
    upstream = {"ingest", "quality_raw", "preprocess", "quality_prepared", "base_model", "train_lora", "generate",
                "quality_synthetic"}
    for name in upstream:
        assert "seed" not in (dvc["stages"][name].get("params") or []), name


def test_memorisation_and_fidelity_never_depend_on_the_classifier_side():
    """`dvc exp run -S ratio=...` (or seed, or train.*) must not re-run the audit's feature space or its numbers."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name in ("audit_features", "audit"):
        st = dvc["stages"][name]
        params = [p if isinstance(p, str) else next(iter(p)) for p in st.get("params") or []]
        assert not {"ratio", "seed", "train"} & {p.split(".")[0] for p in params}, (name, params)
        deps = " ".join(st["deps"])
        assert "classifiers" not in deps and "predictions" not in deps, (name, deps)
    assert "audit" in {k.split(".")[0] for k in dvc["stages"]["audit"]["params"] if isinstance(k, str)}
    assert any("predictions" in d for d in dvc["stages"]["audit_dataset"]["deps"])
    # every audit key the stage reads is listed for it, so an edit re-runs it
    listed = {p.split(".", 1)[1] for p in dvc["stages"]["audit"]["params"] if isinstance(p, str) and p.startswith("audit.")}
    assert listed == AUDIT_KEYS


def test_real_fraction_and_class_mix_reach_only_the_classifier_side():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    readers = set()
    for name, st in dvc["stages"].items():
        keys = [p for p in st.get("params") or [] if isinstance(p, str)]
        if any(k in ("train", "train.real_fraction", "train.mixing") or k.startswith("train.mixing.") for k in keys):
            readers.add(name)
    assert readers == {"train_config", "cards"}  # train@<model> reads them through train_config's file
    assert "reports/train_config/${item.model}.json" in dvc["stages"]["train"]["deps"]


def _imported_files(module_file: Path, within: str) -> set[str]:
    """Files under `within` (e.g. dermsynth/classify) that `module_file` imports, transitively."""
    import ast

    seen, todo = set(), [module_file]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for n in names:
                f = ROOT / (n.replace(".", "/") + ".py")
                rel = f.relative_to(ROOT).as_posix()
                if f.is_file() and rel.startswith("dermsynth/") and rel not in seen:
                    seen.add(rel)
                    todo.append(f)
    return {f for f in seen if f.startswith(within)}


def _closure(entry: Path) -> set[str]:
    """Every project file (dermsynth/, stages/) that `entry` imports, transitively, function-level imports too;
    `from dermsynth.data import subgroups` counts as importing dermsynth/data/subgroups.py."""
    import ast

    seen, todo = set(), [entry]
    while todo:
        for node in ast.walk(ast.parse(todo.pop().read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for n in names:
                for f in (ROOT / (n.replace(".", "/") + ".py"), ROOT / n.replace(".", "/") / "__init__.py"):
                    rel = f.relative_to(ROOT).as_posix()
                    if f.is_file() and rel.split("/")[0] in ("dermsynth", "stages") and rel not in seen:
                        seen.add(rel)
                        todo.append(f)
    return seen


def test_every_stage_depends_on_the_code_it_imports():
    """An edit to a module a stage imports must re-run the stage: each imported file is a dep of it (itself or
    a folder above it). The stage runner (stages/_common.py: parameter loading and validation, errors, the
    repository root) and what it imports are exempt: every stage has them, and the params stage depends on
    them (its check of params.yaml is what they do); so is dermsynth/timings.py (the timing reports)."""
    import re

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    exempt = _closure(ROOT / "stages/_common.py") | {"stages/_common.py", "dermsynth/timings.py"}
    missing = {}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        entry = re.search(r"-m (stages\.\w+)", body["cmd"]).group(1).replace(".", "/") + ".py"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        used = (_closure(ROOT / entry) | {entry}) - exempt
        gaps = sorted(f for f in used if not f.endswith("__init__.py")
                      and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
        if gaps:
            missing[name] = gaps
    assert not missing, missing


def test_stages_that_list_modules_list_every_module_they_import():
    """train@ and audit_features name single files of dermsynth/classify (a plot change must not re-train):
    every file they import from there must be among them, or an edit would not re-run them."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for stage, entry in (("train", "stages/train.py"), ("audit_features", "stages/audit_features.py")):
        deps = set(dvc["stages"][stage]["deps"])
        used = _imported_files(ROOT / entry, "dermsynth/classify")
        assert used and used <= deps, (stage, sorted(used - deps))


def _undescribed(model, prefix=""):
    """Dotted keys of `model`'s fields (and of every block inside them, through lists, dicts, Optional and
    Annotated) whose FieldInfo has no description; an entry named by the user shows as `<name>`."""
    import typing

    from pydantic import BaseModel

    def blocks(tp):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return [tp]
        return [b for arg in typing.get_args(tp) for b in blocks(arg)]

    out = []
    for name, field in model.model_fields.items():
        key = prefix + name
        if not field.description:
            out.append(key)
        entry = ".<name>" if typing.get_origin(field.annotation) is dict else ""
        for block in blocks(field.annotation):
            out += _undescribed(block, key + entry + ".")
    return out


def test_every_schema_key_has_a_description():
    """dermsynth/params is the single source of what each params.yaml key means (`dermsynth check --explain`)."""
    from dermsynth.params import Params, explain

    missing = _undescribed(Params)
    assert not missing, "schema keys without a description: " + ", ".join(missing)
    assert "synthetic" in explain("ratio").splitlines()[1]  # the explanation prints it


def test_the_description_walk_reaches_nested_blocks():
    from typing import Annotated, Optional

    from pydantic import BaseModel, Field

    from dermsynth.params import Seed

    class Leaf(BaseModel):
        bare: int = 1
        told: int = Field(1, description="said")
        aliased: Seed = 0  # described by its Annotated type

    class Top(BaseModel):
        one: Leaf = Field(Leaf(), description="a block")
        by_name: dict[str, Leaf] = Field({}, description="blocks by name")
        maybe: Annotated[Optional[Leaf], Field(description="an optional block")] = None
        listed: list[Leaf] = []

    assert _undescribed(Top) == ["one.bare", "by_name.<name>.bare", "maybe.bare", "listed", "listed.bare"]


def test_the_schema_knows_every_source_ingest_reads():
    """params.SOURCES (ingest.source_priority's values, the raw gate's source list) names ingest's readers."""
    from dermsynth.data.ingest import SOURCES as READERS
    from dermsynth.params import SOURCES

    assert tuple(READERS) == SOURCES


# each library config and the params blocks it is built from (the first naming a key wins)
LIBRARY_CONFIGS = {
    "dermsynth.diffusion.lora:LoraTrainConfig": ["lora"],
    "dermsynth.diffusion.plan:GenerateConfig": ["generate"],
    "dermsynth.diffusion.released_listing:ImportConfig": ["generate", "prepare", "ingest"],
    "dermsynth.diffusion.pretrain:PretrainConfig": ["base_model.pretrain"],
    "dermsynth.classify.train:TrainConfig": ["train"],
    "dermsynth.classify.mixing:MixConfig": ["train.mixing", "train"],
    "dermsynth.data.preprocess:PrepConfig": ["prepare"],
    "dermsynth.audit.run:AuditConfig": ["audit"],
    "dermsynth.filter:FilterConfig": ["filter", "quality"],
    "dermsynth.quality.suites:QualityConfig": ["quality"],
}
NO_PARAMS_BLOCK = {"dermsynth.diffusion.tiny:TinyConfig"}  # built from the base model's own config file


def test_a_library_config_built_without_params_is_the_one_dvc_repro_builds():
    """A notebook's `train_lora(LoraTrainConfig())` trains the LoRA `dvc repro` trains: every default a library
    config holds for a params key is the schema's (dermsynth/params is the one source of defaults)."""
    import dataclasses
    import importlib
    import re

    from dermsynth.params import validate

    found = set()
    for f in (ROOT / "dermsynth").rglob("*.py"):
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        found |= {f"{mod}:{c}" for c in re.findall(r"^@dataclass[^\n]*\n(?:@[^\n]*\n)*class (\w+Config)\b", f.read_text(), re.M)}
    assert found == set(LIBRARY_CONFIGS) | NO_PARAMS_BLOCK, found ^ (set(LIBRARY_CONFIGS) | NO_PARAMS_BLOCK)
    schema = validate({})
    wrong, keys = [], 0
    for name, blocks in LIBRARY_CONFIGS.items():
        mod, cls = name.split(":")
        cfg = getattr(importlib.import_module(mod), cls)
        dicts = []
        for b in blocks:
            d = schema
            for part in b.split("."):
                d = d[part]
            dicts.append(d)
        for field in dataclasses.fields(cfg):
            d = next((d for d in dicts if field.name in d), None)
            if d is None or field.name == "source":  # ImportConfig.source: no default (a set must be named)
                continue
            keys += 1
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                wrong.append(f"{cls}.{field.name}: no default")
                continue
            value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            if (list(value) if isinstance(value, tuple) else value) != d[field.name]:
                wrong.append(f"{cls}.{field.name}: {value!r}, the schema {d[field.name]!r}")
    assert not wrong and keys > 100, (keys, wrong)


def test_a_library_config_may_not_write_a_default_of_its_own():
    from dataclasses import dataclass

    from dermsynth.params import Lora, defaults_from

    with pytest.raises(TypeError, match="LoraLike.alpha: the default is Lora.alpha's"):
        @dataclass
        @defaults_from(Lora)
        class LoraLike:
            rank: int
            alpha: int = 8

    @dataclass
    @defaults_from(Lora, required=("rank",))
    class Needs:
        rank: int
        alpha: int
    assert Needs(rank=4).alpha == Lora.model_fields["alpha"].default
    with pytest.raises(TypeError):
        Needs()
