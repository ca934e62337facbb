"""The params.yaml schema: one exact line per user mistake, the good forms accepted, stages that stop
before they touch anything, and `dermsynth check`."""
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dermsynth.params import ParamsError, check_model_names, validate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


def _with(edits: dict) -> dict:
    """params.yaml with `edits` ({"a.b.c": value}; value DELETE removes the key) applied."""
    p = copy.deepcopy(SHIPPED)
    for dotted, value in edits.items():
        *path, last = dotted.split(".")
        block = p
        for k in path:
            block = block[k]
        if value is DELETE:
            del block[last]
        else:
            block[last] = value
    return p


DELETE = object()

# (edits to the shipped params.yaml, the exact line of the error)
BAD = [
    ({"lora.learning_rate": "abc"},
     "lora.learning_rate: Input should be a valid number, unable to parse string as a number (got 'abc')"),
    ({"train.epochs": "twelve"},
     "train.epochs: Input should be a valid integer, unable to parse string as an integer (got 'twelve')"),
    ({"train.epochs": 0}, "train.epochs: Input should be greater than 0 (got 0)"),
    ({"train.epochs": 2.5},
     "train.epochs: Input should be a valid integer, got a number with a fractional part (got 2.5)"),
    ({"prepare.hair_removal": "false"},
     "prepare.hair_removal: Input should be a valid boolean; write false without quotes (got 'false')"),
    ({"generate.channels_last": "yes"}, "generate.channels_last: Input should be a valid boolean (got 'yes')"),
    ({"ratio": 1.5}, "ratio: Input should be less than or equal to 1 (got 1.5)"),
    ({"ratio": -0.1}, "ratio: Input should be greater than or equal to 0 (got -0.1)"),
    ({"prepare.size": 100}, "prepare.size: Input should be a multiple of 8 (got 100)"),
    ({"lora.learnig_rate": 0.001}, "lora.learnig_rate: unknown key; did you mean 'learning_rate'?"),
    ({"tain": {}}, "tain: unknown key; did you mean 'train'?"),
    ({"generate.samplers": ["euler", "ddim"]},
     "generate.samplers.1: must be 'euler', 'euler_a' or 'plms' (got 'ddim')"),
    ({"generate.dtype": "half"},
     "generate.dtype: must be 'auto', 'fp16', 'bf16', 'fp32', 'float16', 'bfloat16' or 'float32' (got 'half')"),
    ({"train.mixed_precision": "fp8"}, "train.mixed_precision: must be 'auto', 'no', 'fp16' or 'bf16' (got 'fp8')"),
    ({"train.mixing.mode": "mix"}, "train.mixing.mode: must be 'fixed_size' or 'add' (got 'mix')"),
    ({"generate.steps_min": 30}, "generate.steps_min: larger than steps_max (30 > 26)"),
    ({"prepare.val_fraction": 0.5, "prepare.test_fraction": 0.5},
     "prepare.val_fraction + test_fraction: must leave a training split (got 0.5 + 0.5)"),
    ({"base_model.name": "models/does-not-exist"},
     "base_model.name: 'models/does-not-exist' is neither 'tiny' nor an existing local path "
     "(a diffusers directory or a .safetensors/.ckpt file)"),
    ({"train.pretrained_file": "weights/missing.safetensors"},
     "train.pretrained_file: no such file (got 'weights/missing.safetensors')"),
    ({"audit.features": "weights/dino.safetensors"}, "audit.features: no such file (got 'weights/dino.safetensors')"),
    ({"train.processes": 3}, "train.batch_size: 32 is the global batch and must divide evenly between processes=3"),
    ({"train.processes": 2, "train.overrides.mobilenetv2_100": {"batch_size": 9}},
     "train.overrides.mobilenetv2_100.batch_size: 9 is the global batch and must divide evenly between processes=2"),
    ({"train.overrides.mobilenetv2_100": {"lr": "fast"}},
     "train.overrides.mobilenetv2_100.lr: Input should be a valid number, unable to parse string as a number "
     "(got 'fast')"),
    ({"ingest.source_priority": ["ham10000", "isic2026"]},
     "ingest.source_priority.1: must be 'ham10000', 'isic2019', 'isic2020', 'isic2024' or 'isic_archive' (got "
     "'isic2026')"),
    ({"evaluate.gradcam_images": 0}, "evaluate.gradcam_images: Input should be greater than 0 (got 0)"),
    ({"filter.policy": "best"},
     "filter.policy: must be 'none', 'flagged', 'realism', 'label' or 'combined' (got 'best')"),
    ({"filter.keep_fraction": 0}, "filter.keep_fraction: Input should be greater than 0 (got 0)"),
    ({"quality.max_subgroup_shift": 1.5}, "quality.max_subgroup_shift: Input should be less than or equal to 1 (got 1.5)"),
    ({"paths.reports": 7}, "paths.reports: Input should be a valid string (got 7)"),
    ({"lora.target_modules": []},
     "lora.target_modules: List should have at least 1 item after validation, not 0 (got [])"),
]


@pytest.mark.parametrize("edits,line", BAD, ids=[next(iter(e)) for e, _ in BAD])
def test_bad_parameters_give_one_exact_line(edits, line):
    with pytest.raises(ParamsError) as e:
        validate(_with(edits))
    assert e.value.lines == [line]


def test_yaml_quirks_and_good_forms():
    # PyYAML reads 1e-4 as a string; the schema reads it as the number the user meant
    text = (ROOT / "params.yaml").read_text().replace("learning_rate: 0.0001", "learning_rate: 2e-4")
    raw = yaml.safe_load(text)
    assert raw["lora"]["learning_rate"] == "2e-4"
    assert validate(raw)["lora"]["learning_rate"] == 2e-4
    p = validate(_with({"train.overrides.mobilenetv2_100": {"lr": "5e-6"}}))
    assert p["train"]["overrides"]["mobilenetv2_100"] == {"lr": 5e-6}  # an override holds only what it gives
    assert validate(_with({"generate.dtype": "fp16"}))["generate"]["dtype"] == "fp16"
    with pytest.raises(ParamsError) as e:
        validate("ratio=0.5")
    assert e.value.lines == ["params.yaml: must be a mapping of blocks (got str)"]


def test_shipped_params_are_the_schema_defaults():
    """The schema is the one source of defaults: a key left out means what params.yaml says."""
    assert json.dumps(validate(SHIPPED), sort_keys=True) == json.dumps(SHIPPED, sort_keys=True)
    assert json.dumps(validate({}), sort_keys=True) == json.dumps(SHIPPED, sort_keys=True)  # an empty file
    assert validate(_with({"lora.alpha": DELETE}))["lora"]["alpha"] == SHIPPED["lora"]["alpha"]


def test_paper_config_validates_once_the_base_model_exists(tmp_path, monkeypatch):
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    with pytest.raises(ParamsError) as e:
        validate(paper)
    assert [line.split(":")[0] for line in e.value.lines] == ["base_model.name"]
    sd = tmp_path / "stable-diffusion-v1-5"
    sd.mkdir()
    paper["base_model"]["name"] = str(sd)
    check_model_names(validate(paper))


def test_unknown_timm_model_names_the_key_and_a_near_name():
    with pytest.raises(ParamsError) as e:
        check_model_names(validate(_with({"train.models": ["mobilenetv3_nonexist", "mobilenetv2_100"],
                                          "train.overrides": {"mobilenetv3_nonexist": {}, "mobilenetv2_100": {}}})))
    assert len(e.value.lines) == 1
    assert e.value.lines[0].startswith("train.models[0]: timm has no model 'mobilenetv3_nonexist'; did you mean")


def _stage(tmp_path: Path, params: dict, *cmd: str) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(ROOT), DVC_ROOT=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("edits,stage,line", [
    ({"train.models": ["mobilenetv3_nonexist"], "train.overrides": {"mobilenetv3_nonexist": {}}},
     ["-m", "stages.train", "--model", "mobilenetv3_nonexist"], "ERROR: train.models[0]: timm has no model"),
    ({"train.epochs": "twelve"}, ["-m", "stages.train", "--model", "mobilenetv2_100"],
     "ERROR: train.epochs: Input should be a valid integer"),
    ({"base_model.name": "missing/sd15"}, ["-m", "stages.base_model"],
     "ERROR: base_model.name: 'missing/sd15' is neither 'tiny' nor an existing local path"),
])
def test_a_stage_stops_on_one_line_before_touching_anything(tmp_path, edits, stage, line):
    (tmp_path / "models/base").mkdir(parents=True)
    (tmp_path / "models/base/keep.txt").write_text("an earlier base model")
    p = _stage(tmp_path, _with(edits), *stage)
    assert p.returncode == 1, p.stderr
    errors = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(errors) == 1 and errors[0].startswith(line), p.stderr
    assert "Traceback" not in p.stderr
    assert (tmp_path / "models/base/keep.txt").is_file()  # nothing deleted
    assert sorted(x.name for x in tmp_path.iterdir()) == ["models", "params.yaml"]  # no mlflow.db, no outputs


def test_a_bug_keeps_its_traceback(tmp_path):
    # a valid params file but no prepared data (DVC would have run preprocess first): not a UserError,
    # so the traceback stays
    p = _stage(tmp_path, SHIPPED, "-m", "stages.audit_features")
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_a_model_needs_no_overrides_entry():
    """`dvc exp run -S 'train.models=[resnet18]'` with nothing else: the model takes the block's settings."""
    from dermsynth.classify.settings import model_settings
    from dermsynth.params import unused_overrides

    p = validate(_with({"train.models": ["resnet18"], "train.overrides.mobilenetv2_100": {"lr": 0.01}}))
    s = model_settings(p, "resnet18", 96)
    assert s["train"]["lr"] == SHIPPED["train"]["lr"] and s["train"]["model"] == "resnet18"
    # img_size 0: the prepared images' side as the prepared set recorded it, whatever prepare.size says now
    assert s["train"]["img_size"] == 96 and s["mixing"]["real_fraction"] == 1.0
    assert model_settings(p, "mobilenetv2_100", 96)["train"]["lr"] == 0.01
    assert unused_overrides(p) == ["train.overrides.vit_tiny_patch16_224: not in train.models, unused",
                                   "train.overrides.mobilenetv2_100: not in train.models, unused"]


def test_check_command_reports_the_demo_and_the_problems(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ok = subprocess.run([sys.executable, "-m", "dermsynth.cli", "check"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    for row in ("parameters", "classifiers", "raw data", "base model", "local weights", "disk"):
        assert f"  {row} " in ok.stdout
    assert "ham10000 " in ok.stdout and "ok: ready" in ok.stdout
    bad = _with({"paths.raw": str(tmp_path / "nowhere"), "lora.rank": "eight"})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    p = subprocess.run([sys.executable, "-m", "dermsynth.cli", "check", str(tmp_path / "bad.yaml")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "ERROR: lora.rank: Input should be a valid integer, unable to parse string as an integer (got 'eight')"]
    bad = _with({"paths.raw": str(tmp_path / "nowhere")})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    p = subprocess.run([sys.executable, "-m", "dermsynth.cli", "check", str(tmp_path / "bad.yaml")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [f"ERROR: paths.raw: {tmp_path / 'nowhere'} does not exist (run `dvc pull "
                                             "data.dvc`, or point it at your archives)"]


def test_check_accepts_the_paper_config_on_a_local_sd_directory(tiny_base, tmp_path, monkeypatch):
    """configs/paper.yaml passes once base_model.name names a complete diffusers directory (the tiny
    stand-in has SD1.5's layout); a damaged copy is named file by file."""
    from dermsynth.check import check

    monkeypatch.chdir(ROOT)  # the demo raw data is found through paths.raw
    paper = yaml.safe_load((ROOT / "configs/paper.yaml").read_text())
    paper["base_model"]["name"] = str(tiny_base)
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    rep = check(tmp_path / "paper.yaml")
    assert [p for p in rep.problems if not p.startswith("disk:")] == []
    assert dict(rep.rows)["base model"] == f"{tiny_base} (diffusers directory)"
    broken = tmp_path / "sd15"
    shutil.copytree(tiny_base, broken)
    (broken / "tokenizer" / "tokenizer.json").unlink()
    (broken / "unet" / "config.json").write_text("{not json")
    paper["base_model"]["name"] = str(broken)
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    problems = [p for p in check(tmp_path / "paper.yaml").problems if not p.startswith("disk:")]
    assert len(problems) == 2
    assert problems[0].startswith(f"base_model.name: {broken / 'unet' / 'config.json'}: JSONDecodeError")
    assert problems[1].startswith(f"base_model.name: {broken / 'tokenizer'} has neither tokenizer.json nor")
