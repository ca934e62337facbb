"""Audit: memorisation on a planted near-copy, FID/KID on identical vs shifted sets, the FiftyOne dataset."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dermsynth.audit.fidelity import fid_kid, fid_space, prdc
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
    root_, m = prepared_session
    held_out = m[m.split != "train"]
    feat = PixelFeatures()
    emb = lambda a: feat(torch.from_numpy(a).permute(0, 3, 1, 2)).numpy()  # noqa: E731
    # another lesion of another patient (the splits are grouped), not among the calibration images: a
    # typical one (median distance to the training images; 5 % of held-out lesions fall below the
    # threshold by its definition, so a fixed pick would be a coin with a 5 % edge)
    pool = np.stack([np.asarray(Image.open(root_ / p).convert("RGB")) for p in held_out.path.iloc[20:60]])
    d = np.linalg.norm(emb(pool)[:, None] - emb(real)[None], axis=2).min(1)
    other = pool[int(np.argsort(d)[len(d) // 2])]
    syn = np.stack([copy, unrelated, other])
    h = lambda a: np.array([phash64(x) for x in a], dtype=np.uint64)  # noqa: E731
    nn = nearest_real(emb(syn), emb(real), h(syn), h(real))
    assert nn.nn_embedding[0] == 7 and nn.nn_phash[0] == 7 and nn.phash_distance[0] <= 4  # within the split rule
    held = held_out.head(20)
    held_px = np.stack([np.asarray(Image.open(root_ / p).convert("RGB")) for p in held.path])
    thr = heldout_threshold(emb(held_px), emb(real), quantile=0.05)
    assert nn.distance[0] < thr < nn.distance[1]
    flags = flag_near_copies(nn, distance_max=thr, phash_max=4)
    assert flags.tolist() == [True, False, False]
    # each criterion alone catches the planted copy
    assert flag_near_copies(nn, distance_max=-1.0, phash_max=4)[0] and flag_near_copies(nn, thr, phash_max=-1)[0]


def test_fid_kid_identical_vs_shifted_and_kid_seeded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))  # same distribution
    same = fid_kid(a, b, seed=1, kid_subset_size=50)
    diff = fid_kid(a, b + 1.5, seed=1, kid_subset_size=50)
    assert diff["fid"] > 20 * max(same["fid"], 1e-6) and diff["kid"] > same["kid"] + 0.01
    assert abs(same["kid"]) < diff["kid"] / 10 and same["fid_space"] == "full 8-d feature space"
    assert fid_kid(a, b + 1.5, seed=1, kid_subset_size=50) == diff  # seeded: the same numbers every run
    assert fid_kid(a, b + 1.5, seed=2, kid_subset_size=50)["kid"] != diff["kid"]


def test_fid_falls_back_to_pca_when_samples_are_few_for_the_dimension():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(90, 192)), rng.normal(size=(300, 192))
    r, f, note = fid_space(real, fake)
    assert r.shape[1] == f.shape[1] == 45 and "PCA" in note and "n=90" in note
    out = fid_kid(real, fake, kid_subset_size=50)
    assert np.isfinite(out["fid"]) and "45-d PCA" in out["fid_space"]


def _prdc_exhaustive(real, fake, k):
    """The definitions of Naeem et al. (2020) with full distance matrices, for small inputs."""
    from scipy.spatial.distance import cdist

    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(rr, 1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(ff, 1)[:, k]
    return {"precision": (rf <= r_real[:, None]).any(0).mean(), "recall": (rf <= r_fake[None, :]).any(1).mean(),
            "density": (rf <= r_real[:, None]).sum() / (k * len(fake)),
            "coverage": (rf.min(1) <= r_real).mean()}


def test_prdc_blockwise_equals_exhaustive_and_extremes():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 6)), rng.normal(0.4, 1.2, size=(250, 6))
    got, want = prdc(real, fake, k=5), _prdc_exhaustive(real, fake, 5)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    x = rng.normal(size=(200, 5))
    same = prdc(x, x + 1e-6)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and same["density"] == pytest.approx(1.0, abs=0.15)
    far = prdc(x, x + 100)
    assert far["precision"] == far["recall"] == far["coverage"] == far["density"] == 0.0


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
                        "nn_real_image_id": syn.image_id, "nn_distance": 3.2, "nn_phash_real_image_id": "x",
                        "phash_distance": 30, "near_copy": [True] + [False] * 5})
    emb = np.random.default_rng(0).normal(size=(len(m) + len(syn), 8))
    return root, m, syn, {"resnet18": pred}, emb, mem


def test_dataset_fields_tags_views_and_idempotent_rebuild(tables):
    from dermsynth.audit.dataset import build_dataset, dataset_counts

    root, m, syn, preds, emb, mem = tables
    ds = build_dataset(m, syn, preds, root, emb, mem, name="dermsynth-test")
    assert dataset_counts("dermsynth-test") == {"real": len(m), "synthetic": 6, "near_copy": 1, "filtered_out": 0}
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


def test_dataset_subgroups_skin_tone_views_and_filter_scores(tables):
    from dermsynth.audit.dataset import build_dataset, dataset_counts
    from dermsynth.filter import FilterConfig, select

    root, m, syn, preds, emb, mem = tables
    scores = select(pd.DataFrame({"image_id": syn.image_id, "label": syn.label, "blank": False,
                                  "near_copy": mem.near_copy.to_numpy(), "knn_ratio": np.linspace(1, 2, 6),
                                  "label_prob": 0.7}), FilterConfig(keep_fraction=1.0))
    tones = pd.DataFrame({"image_id": list(syn.image_id) + list(m.image_id),
                          "origin": ["synthetic"] * 6 + ["real"] * len(m), "label": "benign",
                          "ita": [12.5] * 6 + [40.0] * len(m), "skin_tone": ["tan"] * 6 + ["intermediate"] * len(m)})
    ds = build_dataset(m, syn, preds, root, emb, mem, name="dermsynth-test-sub", filter_scores=scores, skin_tones=tones)
    assert dataset_counts("dermsynth-test-sub")["filtered_out"] == 1  # the near-copy
    real = ds.match_tags("real").first()
    row = m.set_index("image_id").loc[real.image_id]
    assert (real.sex, real.age_band, real.site, real.skin_tone) == (row.sex, row.age_band, row.site, row.skin_tone)
    assert real.crop_ita == 40.0 and (real.ita is None or real.ita == pytest.approx(float(row.ita)))
    s = ds.match_tags("synthetic").match_tags("filtered_out", bool=False).first()
    assert s.ita == 12.5 and s.skin_tone == "tan" and s.kept is True and s.label_prob == 0.7 and s.knn_ratio >= 1
    views = set(ds.list_saved_views())
    assert {"filtered_out", "skin_tone_tan"} <= views and {f"skin_tone_{t}" for t in set(m.skin_tone)} <= views
    assert len(ds.load_saved_view("skin_tone_tan")) == 6 + int((m.skin_tone == "tan").sum())
    ds.delete()


def _synthetic_like(root, m, n=10):
    """Synthetic-set rows pointing at prepared training images (the audit reads only files and columns)."""
    return m[m.split == "train"].head(n).assign(image_id=[f"syn_{i}" for i in range(n)], sampler="euler")


def test_audit_in_a_feature_space_trained_once_on_real_images(prepared_session, tmp_path):
    from dermsynth.audit.features import build_feature_model
    from dermsynth.audit.run import AuditConfig, audit, near_copy_sheet

    root, m = prepared_session
    conf = build_feature_model(m, tmp_path / "features", "resnet18", 32, epochs=1, seed=0, root=root)
    assert conf["kind"] == "trained_on_real" and "seconds" not in conf["summary"]
    syn = _synthetic_like(root, m)
    res = audit(m, syn, tmp_path / "features", AuditConfig(knn_k=3, kid_subset_size=20), root=root)
    mem, s = res["memorization"], res["summary"]
    # the "synthetic" images are training images themselves: every one is a near-copy of itself
    assert mem.near_copy.all() and (mem.nn_real_image_id.to_numpy() == m[m.split == "train"].head(10).image_id.to_numpy()).all()
    assert s["near_copies"] == 10 and set(s["fidelity"]) >= {"all"} and "trained once" in s["feature_space"]
    assert res["embeddings"].shape[0] == len(m) + len(syn)
    again = audit(m, syn, tmp_path / "features", AuditConfig(knn_k=3, kid_subset_size=20), root=root)["summary"]
    assert again["fidelity"] == s["fidelity"]  # seeded KID: the same numbers from the same inputs
    # KID with the settings it used: 10 synthetic images cannot fill subsets of 20
    ks = res["fidelity"]["all"]["kid_settings"]
    assert (ks["subsets"], ks["subset_size"], ks["subset_size_reduced_from"]) == (50, 10, 20) and "note" in ks
    # train on synthetic, test on the real test split (the fixture's synthetic rows are real training images)
    cas = res["fidelity"]["classification_accuracy_score"]
    assert (cas["n_synthetic_train"], cas["n_real_train"], cas["n_real_test"]) == (
        10, int((m.split == "train").sum()), int((m.split == "test").sum()))
    assert set(cas) >= {"tstr_auc", "tstr_balanced_accuracy", "trtr_auc", "trtr_balanced_accuracy"}
    assert (cas["tstr_auc"] is None) == ("tstr_reason" in cas) and s["classification_accuracy_score"]["n_real_test"] > 0
    assert set(s["fidelity"]) == set(syn.label) | {"all"}  # the summary's fidelity: classes only
    fig = near_copy_sheet(mem, m, syn, 4, root)
    fig.savefig(tmp_path / "pairs.png")
    assert (tmp_path / "pairs.png").stat().st_size > 3000


def test_standard_embedder_from_a_local_weights_file(prepared_session, tmp_path):
    """audit.features: standard weights loaded through timm from a local file (a tiny stand-in here)."""
    import timm
    from safetensors.torch import save_file

    from dermsynth.audit.features import build_feature_model, load_backbone

    root, m = prepared_session
    ref = timm.create_model("resnet18", num_classes=0)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "resnet18.safetensors")
    conf = build_feature_model(m, tmp_path / "features", "resnet18", 32, epochs=1, seed=0,
                               weights=str(tmp_path / "resnet18.safetensors"))
    assert conf["kind"] == "pretrained"
    ext = load_backbone(tmp_path / "features")
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    ref.eval()
    with torch.no_grad():
        want = ref((x.float() / 255 - ext.mean) / ext.std)
    assert torch.allclose(ext(x), want, atol=1e-5)  # the file's weights, not a random init
    with pytest.raises(FileNotFoundError, match="audit.features"):
        build_feature_model(m, tmp_path / "f2", "resnet18", 32, 1, 0, weights=str(tmp_path / "missing.safetensors"))


def test_skin_tone_of_synthetic_against_real_measured_alike(prepared_session, tmp_path):
    """The same images as 'synthetic' are at distance 0; darkened copies move ITA down and the bands apart."""
    import cv2

    from dermsynth.audit.skin_tone import distances, histogram, measure
    from dermsynth.contracts import SKIN_TONE_COLUMNS

    root, m = prepared_session
    real = m[m.split == "train"]
    same = measure(real, real.assign(image_id="syn_" + real.image_id), root, workers=1)
    assert list(same.columns) == SKIN_TONE_COLUMNS and len(same) == 2 * len(real)
    assert same.ita.notna().mean() > 0.9  # lesion-centred crops still show skin outside the lesion's box
    for label, d in distances(same).items():
        assert d["wasserstein_ita_degrees"] == 0 and d["total_variation_bands"] == 0
    dark_rows = []
    for r in real.itertuples():
        img = cv2.imread(str(root / r.path))
        dst = tmp_path / f"dark_{r.image_id}.png"
        cv2.imwrite(str(dst), (img * 0.6).astype("uint8"))  # darker skin, the same lesions
        dark_rows.append({"image_id": f"dark_{r.image_id}", "label": r.label, "path": str(dst)})
    import pandas as pd

    dark = measure(real, pd.DataFrame(dark_rows), root, workers=1)
    for label, d in distances(dark).items():
        assert d["median_ita_synthetic"] < d["median_ita_real"] - 10
        assert d["wasserstein_ita_degrees"] > 10 and d["total_variation_bands"] > 0.3
    histogram(dark, tmp_path / "ita.png")
    assert (tmp_path / "ita.png").stat().st_size > 5000


class _IdentityVae:
    """A stand-in VAE whose decoder returns exactly what it was given: its ceiling is the real TRTR."""

    device, dtype = torch.device("cpu"), torch.float32

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

    def decode(self, z):
        return SimpleNamespace(sample=z)


def test_latent_ceiling_trains_on_reconstructions_of_real_training_images(prepared_session, tiny_base, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dermsynth.audit.features import build_feature_model, embed, load_backbone, load_uint8
    from dermsynth.audit.reconstruction import load_vae, reconstruct, reconstruction_ceiling, train_rows
    from dermsynth.audit.run import AuditConfig, audit

    root, m = prepared_session
    build_feature_model(m, tmp_path / "features", "resnet18", 32, epochs=1, seed=0, root=root)
    syn = _synthetic_like(root, m)
    cfg = AuditConfig(knn_k=3, kid_subset_size=20, reconstruction_images=0)
    # an exact decoder: the classifier sees the real training images themselves, so ceiling = TRTR
    cas = audit(m, syn, tmp_path / "features", cfg, root=root, vae=_IdentityVae())["fidelity"][
        "classification_accuracy_score"]
    assert "ceiling_auc" not in cas  # reconstruction_images 0: not measured
    cas = audit(m, syn, tmp_path / "features", replace(cfg, reconstruction_images=10_000), root=root,
                vae=_IdentityVae())["fidelity"]["classification_accuracy_score"]
    assert cas["ceiling_auc"] == cas["trtr_auc"] and cas["n_reconstructed"] == (m.split == "train").sum()

    # the tiny base model's (random) VAE, against scikit-learn on its reconstructions
    vae, ext = load_vae(tiny_base), load_backbone(tmp_path / "features")
    test = m[m.split == "test"]
    test_x = embed(ext, list(test.path), root)
    got = reconstruction_ceiling(ext, vae, m, test_x, test.label.to_numpy(), 12, seed=3, root=root)
    rows = train_rows(m, 12, 3)
    assert got["n_reconstructed"] == len(rows) and set(rows.label) == {"benign", "malignant"}
    rec_x = ext(reconstruct(vae, load_uint8(list(rows.path), root))).numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=3))
    clf.fit(rec_x.astype(np.float64), rows.label.to_numpy() == "malignant")
    want = roc_auc_score(test.label == "malignant", clf.predict_proba(test_x.astype(np.float64))[:, 1])
    assert got["ceiling_auc"] == pytest.approx(want, abs=1e-12)
    assert not np.array_equal(rec_x, ext(load_uint8(list(rows.path), root)).numpy())  # a real, lossy VAE


def test_reconstruction_sample_keeps_the_class_mix(prepared_session):
    from dermsynth.audit.reconstruction import train_rows

    _, m = prepared_session
    train = m[m.split == "train"]
    rows = train_rows(m, len(train) // 2, seed=0)
    want = train.label.value_counts(normalize=True)
    assert abs(len(rows) - len(train) // 2) <= 2 and rows.index.isin(train.index).all()
    assert (rows.label.value_counts(normalize=True) - want).abs().max() < 0.05
    assert train_rows(m, 0, 0).equals(train) and train_rows(m, 10**6, 0).equals(train)
