"""Audit: memorisation on a planted near-copy, FID/KID on identical vs shifted sets, the FiftyOne dataset."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dermsynth.audit.fidelity import fid_kid, precision_recall
from dermsynth.audit.memorization import flag_near_copies, heldout_threshold, nearest_real
from dermsynth.data.dedup import phash64


class PixelFeatures(torch.nn.Module):
    """A fixed, transparent feature map: 6x6 average colour (108-d)."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 6).flatten(1)


def _imgs(prepared_session, n):
    root, m = prepared_session
    return root, m[m.split == "train"].head(n)


def test_planted_near_copy_is_flagged_and_unrelated_is_not(prepared_session):
    root, train = _imgs(prepared_session, 30)
    real = np.stack([np.asarray(Image.open(root / p).convert("RGB")) for p in train.path])
    rng = np.random.default_rng(0)
    # a lightly modified training image: brighter, with sensor-like noise
    copy = np.clip(real[7].astype(int) + 4 + rng.normal(0, 2, real[7].shape), 0, 255).astype(np.uint8)
    unrelated = (rng.random(real[0].shape) * 255).astype(np.uint8)
    other = real[12][::-1, ::-1].copy()  # a real lesion, but rotated 180 degrees: not a copy
    syn = np.stack([copy, unrelated, other])
    feat = PixelFeatures()
    emb = lambda a: feat(torch.from_numpy(a).permute(0, 3, 1, 2)).numpy()  # noqa: E731
    h = lambda a: np.array([phash64(x) for x in a], dtype=np.uint64)  # noqa: E731
    nn = nearest_real(emb(syn), emb(real), h(syn), h(real))
    assert nn.nn_embedding[0] == 7 and nn.nn_phash[0] == 7 and nn.phash_distance[0] <= 2
    root_, m = prepared_session
    held = m[m.split != "train"].head(20)
    held_px = np.stack([np.asarray(Image.open(root_ / p).convert("RGB")) for p in held.path])
    thr = heldout_threshold(emb(held_px), emb(real), quantile=0.05)
    assert nn.cosine_similarity[0] > thr > nn.cosine_similarity[1]
    flags = flag_near_copies(nn, cosine_min=thr, phash_max=4)
    assert flags.tolist() == [True, False, False]
    # each criterion alone catches the planted copy
    assert flag_near_copies(nn, cosine_min=2.0, phash_max=4)[0] and flag_near_copies(nn, thr, phash_max=-1)[0]


def test_fid_kid_identical_vs_shifted():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(60, 200, (120, 3, 24, 24), dtype=np.uint8))
    b = torch.from_numpy(rng.integers(60, 200, (120, 3, 24, 24), dtype=np.uint8))  # same distribution
    shifted = (b.int() + 50).clamp(0, 255).to(torch.uint8)
    same = fid_kid(PixelFeatures(), a, b, kid_subset=50)
    diff = fid_kid(PixelFeatures(), a, shifted, kid_subset=50)
    assert diff["fid"] > 20 * max(same["fid"], 1e-6) and diff["kid"] > same["kid"] + 0.01
    assert abs(same["kid"]) < 0.01


def test_precision_recall_of_identical_and_disjoint_sets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    assert precision_recall(x, x + 1e-6)["precision"] == 1.0
    far = precision_recall(x, x + 100)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


@pytest.fixture()
def tables(prepared_session):
    root, m = prepared_session
    syn = m[m.split == "train"].head(6).assign(
        image_id=[f"syn_{i}" for i in range(6)], prompt="p", negative_prompt="", sampler=["euler", "plms"] * 3,
        steps=20, cfg=7.0, seed=range(6))
    test = m[m.split == "test"]
    pred = pd.DataFrame({"image_id": test.image_id, "testset": "isic", "label": (test.label == "malignant").astype(int),
                         "score": np.linspace(0.1, 0.9, len(test)), "pred": (np.linspace(0.1, 0.9, len(test)) > 0.5).astype(int)})
    mem = pd.DataFrame({"image_id": syn.image_id, "label": syn.label, "sampler": syn.sampler,
                        "nn_real_image_id": syn.image_id, "cosine_similarity": 0.9, "nn_phash_real_image_id": "x",
                        "phash_distance": 30, "near_copy": [True] + [False] * 5})
    emb = np.random.default_rng(0).normal(size=(len(m) + len(syn), 8))
    return root, m, syn, {"resnet18": pred}, emb, mem


def test_dataset_fields_tags_views_and_idempotent_rebuild(tables):
    from dermsynth.audit.dataset import build_dataset, dataset_counts

    root, m, syn, preds, emb, mem = tables
    ds = build_dataset(m, syn, preds, root, emb, mem, name="dermsynth-test")
    assert dataset_counts("dermsynth-test") == {"real": len(m), "synthetic": 6, "near_copy": 1}
    s = ds.match_tags("synthetic").first()
    assert s.sampler in ("euler", "plms") and s.prompt == "p" and s.ground_truth.label in ("benign", "malignant")
    r = ds.match_tags("test").first()
    assert r.pred_resnet18.label in ("benign", "malignant") and 0.5 <= r.pred_resnet18.confidence <= 1.0
    views = set(ds.list_saved_views())
    assert {"real", "synthetic", "near_copies", "misclassified_resnet18"} <= views
    per_class_sampler = {f"synthetic_{lab}_{smp}" for lab, smp in zip(syn.label, syn.sampler)}
    assert per_class_sampler <= views
    assert "embedding_map" in ds.list_brain_runs() and ds.has_field("uniqueness")
    n_fields = len(ds.get_field_schema())
    ds2 = build_dataset(m, syn, preds, root, emb, mem, name="dermsynth-test")
    assert len(ds2) == len(m) + 6 and len(ds2.get_field_schema()) == n_fields
    ds2.delete()
