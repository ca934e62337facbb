import pytest


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny SD pipeline (32 px, random weights) saved as a diffusers directory."""
    from dermsynth.diffusion.tiny import TinyConfig, build_tiny_pipeline

    path = tmp_path_factory.mktemp("tiny") / "base"
    build_tiny_pipeline(TinyConfig(image_size=32, seed=1)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def instance_images(prepared_session):
    """(repo_root, paths) of 32 px prepared malignant training images."""
    root, m = prepared_session
    return root, m.loc[m.label == "malignant", "path"].head(12).tolist()
