import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never touch the project's own FiftyOne database or MLflow store. The throw-away database
# (~300 MB) is removed at exit; registered before FiftyOne is imported, so it runs after FiftyOne's
# own exit handler has stopped mongod.
if "FIFTYONE_DATABASE_DIR" not in os.environ:
    os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="dermsynth-fo-")
    atexit.register(shutil.rmtree, os.environ["FIFTYONE_DATABASE_DIR"], ignore_errors=True)

from dermsynth.config import configure_environment  # noqa: E402

configure_environment()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_specs():
    from dermsynth.demo.layouts import DemoSpec

    return {
        "ham10000": DemoSpec(22, 0.3, (120, 90), (1, 3)),
        "isic2019": DemoSpec(16, 0.35, (96, 96), (1, 2)),
        "isic2020": DemoSpec(16, 0.3, (128, 96), (1, 2)),
        "isic2024": DemoSpec(16, 0.3, (80, 80), (1, 1)),
    }


@pytest.fixture(scope="session")
def demo_raw_session(tmp_path_factory, small_specs):
    from dermsynth.demo.layouts import write_demo

    return write_demo(tmp_path_factory.mktemp("raw") / "raw", seed=3, specs=small_specs, defects=True)


@pytest.fixture()
def demo_raw(demo_raw_session, tmp_path):
    """A private copy of the small demo raw set, safe to damage."""
    dst = tmp_path / "raw"
    shutil.copytree(demo_raw_session, dst)
    return dst


@pytest.fixture(scope="session")
def prepared_session(tmp_path_factory, demo_raw_session):
    """(repo_root, manifest) of the small demo set ingested and prepared at 32 px."""
    from dermsynth.data.ingest import ingest
    from dermsynth.data.prepare import build_manifest, preprocess_all
    from dermsynth.data.preprocess import PrepConfig

    root = tmp_path_factory.mktemp("repo")
    res = ingest(demo_raw_session, min_size=48, workers=1)
    df = preprocess_all(res.manifest, demo_raw_session, root / "data/prepared/images", root, PrepConfig(size=32), 1)
    manifest, _ = build_manifest(df, 4, 0.15, 0.2, seed=0)
    return root, manifest


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
