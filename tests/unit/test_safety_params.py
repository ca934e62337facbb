"""Parameters that cannot reach outside the repository, delete what the pipeline did not make, be
infinite, overflow a seed, or expand without bound; a full disk that stops a stage on one line."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dermsynth.config import load_params
from dermsynth.errors import UserFileError
from dermsynth.params import ParamsError, validate
from dermsynth.paths import FIXED, MARKER, OUTPUTS, REPLACED, path_problems, replace_output_dir

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git checkout with a tracked folder (`configs/`) and, beside it, a folder outside the repository."""
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "configs/paper.yaml").write_text("ratio: 0.5\n")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/keep.txt").write_text("not the pipeline's")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)
    return root


def _paths(**given: str) -> dict:
    return {"paths": {**SHIPPED["paths"], **given}}


def _problems(root: Path, **given: str) -> list[str]:
    """The confinement rules alone, as they guard `paths.work` and any folder a library caller passes."""
    return path_problems({**SHIPPED["paths"], **given}, root)


# (a new folder below a tracked one, say configs/new, is allowed: nothing of what is tracked is touched)
HOSTILE = ["configs", "../outside", "{outside}", "{outside}/sub", ".", "", "..", ".git", ".git/objects", ".dvc/cache"]


@pytest.mark.parametrize("key", FIXED)
def test_an_output_folder_dvc_yaml_names_cannot_move(repo, key):
    """`dvc exp run -S paths.prepared=configs` would have DVC delete configs/ before any check: refused, and
    any other new folder too, with why."""
    default = SHIPPED["paths"][key]
    for value in [*HOSTILE, f"new/{key}"]:
        value = value.format(outside=repo.parent / "outside")
        with pytest.raises(ParamsError) as e:
            validate(_paths(**{key: value}), root=repo)
        assert e.value.lines == [f"paths.{key}: {value!r} is not {default}: the pipeline's output folders are fixed "
                                 "(dvc.yaml names them); to hold the data on other storage, move DVC's cache "
                                 "(docs/parameters.md)"], e.value.lines
    assert validate(_paths(**{key: f"./{default}/"}), root=repo)["paths"][key] == f"./{default}/"  # the same folder


def test_dvc_yaml_names_the_fixed_folders_and_templates_no_output():
    text = (ROOT / "dvc.yaml").read_text()
    assert all("${paths.%s}" % k not in text for k in FIXED)
    assert all(SHIPPED["paths"][k] + "/" in text or f"- {SHIPPED['paths'][k]}\n" in text for k in FIXED)


@pytest.mark.parametrize("key", OUTPUTS)
def test_no_output_path_reaches_outside_the_repository_or_a_tracked_folder(repo, key):
    outside = repo.parent / "outside"
    for value in HOSTILE:
        value = value.format(outside=outside)
        lines = _problems(repo, **{key: value})
        assert lines and all(line.startswith("paths.") for line in lines), lines
        assert any(line.startswith(f"paths.{key}:") for line in lines), (value, lines)
    assert _problems(repo, **{key: f"new/{key}"}) == []


def test_the_work_folder_may_move_inside_the_repository_only(repo):
    for value in HOSTILE:
        with pytest.raises(ParamsError, match="paths.work:"):
            validate(_paths(work=value.format(outside=repo.parent / "outside")), root=repo)
    assert validate(_paths(work="scratch/work"), root=repo)["paths"]["work"] == "scratch/work"


def test_outputs_may_not_overlap_each_other_or_the_raw_data(repo):
    for given in ({"prepared": "data/synthetic/x"}, {"synthetic": "data"}, {"reports": "data/raw/reports"},
                  {"filter": "data/prepared"}, {"work": "data/prepared/work"}):
        assert any("overlap" in line for line in _problems(repo, **given)), given
    with pytest.raises(ParamsError, match="overlap"):
        validate(_paths(work="data/raw/work"), root=repo)


def test_a_folder_the_pipeline_did_not_make_is_never_a_replaced_output(repo):
    mine = repo / "mydata"
    mine.mkdir()
    (mine / "notes.txt").write_text("untracked, not the pipeline's")
    for key in REPLACED:
        assert any("did not make" in line for line in _problems(repo, **{key: "mydata"})), key
    (mine / MARKER).write_text("")  # a folder the pipeline made: may be replaced
    assert _problems(repo, prepared="mydata") == []


def test_a_reports_folder_with_tracked_files_must_be_one_of_this_project(repo):
    assert any("not a reports folder" in line for line in _problems(repo, reports="configs"))
    (repo / "reports").mkdir()
    (repo / "reports/model_card.md").write_text("a committed report")
    (repo / "reports" / MARKER).write_text("")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    assert _problems(repo, reports="reports") == []


def test_a_stage_deletes_only_a_folder_it_made(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(UserFileError, match="was not made by this pipeline"):
        replace_output_dir(foreign, "paths.prepared")
    assert (foreign / "keep.txt").read_text() == "x"
    made = replace_output_dir(tmp_path / "made", "paths.prepared")
    (made / "old.png").write_bytes(b"stale")
    replace_output_dir(made, "paths.prepared")
    assert sorted(p.name for p in made.iterdir()) == [MARKER]  # emptied, still marked


def test_the_preprocess_stage_refuses_a_tracked_folder_and_leaves_it(repo):
    """What DVC would run: the stage's own check, before it deletes anything."""
    p = dict(SHIPPED, paths=dict(SHIPPED["paths"], prepared="configs"))
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(ROOT), DVC_ROOT=str(repo))
    out = subprocess.run([sys.executable, "-m", "stages.preprocess"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1 and "ERROR: paths.prepared: 'configs' is not data/prepared" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert (repo / "configs/paper.yaml").read_text() == "ratio: 0.5\n"


@pytest.mark.parametrize("key,value,line", [
    ("lora.learning_rate", ".inf", "lora.learning_rate: must be a finite number (got inf)"),
    ("generate.guidance_scale", "1e400", "generate.guidance_scale: must be a finite number (got '1e400')"),
    ("prepare.margin", ".nan", "prepare.margin: must be a finite number (got nan)"),
    ("audit.heldout_quantile", ".inf", "audit.heldout_quantile: must be a finite number (got inf)"),
    ("seed", "18446744073709551616", "seed: Input should be less than or equal to 4294967295 "
                                     "(got 18446744073709551616)"),
    ("data_seed", "-1", "data_seed: Input should be greater than or equal to 0 (got -1)"),
])
def test_numbers_are_finite_and_seeds_fit_the_generators(tmp_path, key, value, line):
    text = (ROOT / "params.yaml").read_text()
    block, _, leaf = key.rpartition(".")
    edited = yaml.safe_load(text)
    target = edited[block] if block else edited
    target[leaf] = yaml.safe_load(value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path / "params.yaml", root=ROOT)
    assert e.value.lines == [line]


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(8)]
    (tmp_path / "params.yaml").write_text("\n".join(laughs) + "\n")  # 10**9 strings if expanded
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path / "params.yaml", root=ROOT)
    assert e.value.lines[0].endswith("line 2: YAML aliases (*a) are not accepted; write the value out")


def test_an_error_line_shows_a_huge_value_cut_short():
    with pytest.raises(ParamsError) as e:
        validate({"generate": {"prompt": ["x" * 10_000] * 1000}})
    assert len(e.value.lines) == 1 and len(e.value.lines[0]) < 200, e.value.lines


@pytest.mark.parametrize("key", ["audit.features", "train.pretrained_file"])
def test_weights_parameters_name_an_existing_weights_file(tmp_path, key):
    block, leaf = key.split(".")
    for value, problem in (("/etc/passwd", "not a weights file"), (str(tmp_path), "is a folder"),
                           (str(tmp_path / "no.safetensors"), "no such file")):
        with pytest.raises(ParamsError, match=problem):
            validate({block: {leaf: value}})
    ok = tmp_path / "w.safetensors"
    ok.write_bytes(b"")
    assert validate({block: {leaf: str(ok)}})[block][leaf] == str(ok)


def test_a_full_disk_stops_preprocessing_on_one_line(tmp_path, demo_raw):
    """/dev/full answers every write with ENOSPC: the first failed image stops the stage, naming it."""
    from dermsynth.data.ingest import ingest
    from dermsynth.data.prepare import preprocess_all
    from dermsynth.data.preprocess import PrepConfig

    interim = ingest(demo_raw, workers=1).manifest.head(6).astype(str)
    out = tmp_path / "prepared/images"
    third = interim.iloc[2]
    (out / third.source).mkdir(parents=True)
    (out / third.source / f"{third.image_id}.png").symlink_to("/dev/full")
    with pytest.raises(UserFileError) as e:
        preprocess_all(interim, demo_raw, out, tmp_path, PrepConfig(size=32), workers=1)
    msg = str(e.value)
    assert msg.startswith(f"disk full writing {out / third.source / third.image_id}.png: 2 images written"), msg
    assert "re-run after freeing space" in msg and "\n" not in msg
    # a re-run with the space back writes the same images
    (out / third.source / f"{third.image_id}.png").unlink()
    a = preprocess_all(interim, demo_raw, out, tmp_path, PrepConfig(size=32), workers=1)
    b = preprocess_all(interim, demo_raw, tmp_path / "again/images", tmp_path, PrepConfig(size=32), workers=1)
    assert list(a.phash) == list(b.phash) and np.isfinite(pd.to_numeric(a.crop_px)).all()


def test_check_command_refuses_paths_that_leave_the_repository(tmp_path):
    bad = dict(SHIPPED, paths=dict(SHIPPED["paths"], reports="/etc", prepared="configs"))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "dermsynth.cli", "check", str(tmp_path / "bad.yaml")], cwd=ROOT / "docs",
                       env=env, capture_output=True, text=True, timeout=120)  # from a subfolder: the same root
    assert p.returncode == 1 and "Traceback" not in p.stderr
    why = ": the pipeline's output folders are fixed (dvc.yaml names them); to hold the data on other storage, " \
          "move DVC's cache (docs/parameters.md)"
    assert p.stderr.strip().splitlines() == [f"ERROR: paths.prepared: 'configs' is not data/prepared{why}",
                                             f"ERROR: paths.reports: '/etc' is not reports{why}"], p.stderr
