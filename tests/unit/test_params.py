"""params.yaml, configs/paper.yaml and dvc.yaml agree with each other and with the code."""
from pathlib import Path

import yaml

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
        lora = {k: v for k, v in p["lora"].items() if k != "threads"}
        from_block(LoraTrainConfig, lora)
        from_block(GenerateConfig, {k: v for k, v in p["generate"].items() if k not in ("processes", "source")})
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
    assert "${paths.reports}/train_config/${item.model}.json" in dvc["stages"]["train"]["deps"]


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


def test_stages_that_list_modules_list_every_module_they_import():
    """train@ and audit_features name single files of dermsynth/classify (a plot change must not re-train):
    every file they import from there must be among them, or an edit would not re-run them."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for stage, entry in (("train", "stages/train.py"), ("audit_features", "stages/audit_features.py")):
        deps = set(dvc["stages"][stage]["deps"])
        used = _imported_files(ROOT / entry, "dermsynth/classify")
        assert used and used <= deps, (stage, sorted(used - deps))
