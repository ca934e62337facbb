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


@pytest.fixture(scope="session")
def gen_repo(tiny_base, instance_images, tmp_path_factory):
    """A repo-like folder with models/base and two LoRAs, as the generate stage sees it."""
    import shutil

    from dermsynth.diffusion.lora import LoraTrainConfig, train_lora

    root = tmp_path_factory.mktemp("genrepo")
    shutil.copytree(tiny_base, root / "models/base")
    img_root, paths = instance_images
    cfg = LoraTrainConfig(max_steps=2, batch_size=4, learning_rate=1e-3, checkpoint_every=2, rank=4, alpha=8)
    for label in ("benign", "malignant"):
        train_lora(root / "models/base", paths, label, root / "models/lora" / label, root / ".work/lora", cfg,
                   repo_root=img_root)
    return root
