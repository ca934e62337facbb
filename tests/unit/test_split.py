"""Grouped, stratified splits and duplicate detection."""
import numpy as np
import pandas as pd

from benchmarks.dedup import hashes
from dermsynth.data.dedup import near_duplicate_pairs, near_duplicate_pairs_exhaustive
from dermsynth.data.split import assign_splits, crossing_groups, group_ids


def test_near_duplicate_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 300, dtype=np.uint64)
    h[10] = h[20]
    h[30] = h[40] ^ np.uint64(0b1011)  # 3 bits apart
    got = set(near_duplicate_pairs_exhaustive(h, 3, chunk=64))
    want = {(i, j) for i in range(300) for j in range(i + 1, 300) if bin(int(h[i]) ^ int(h[j])).count("1") <= 3}
    assert got == want and {(10, 20), (30, 40)} <= got


def test_multi_index_search_finds_exactly_the_exhaustive_pairs():
    for seed, d in ((0, 4), (1, 3), (2, 6)):
        h = hashes(6000, seed, copy_share=0.1)  # above the size where the faiss path takes over
        fast, slow = near_duplicate_pairs(h, d, query_block=1000), near_duplicate_pairs_exhaustive(h, d)
        assert fast == sorted(slow) and len(fast) > 100, (seed, d)


def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    lesion = rng.integers(0, 150, n)
    patient = lesion // 3
    return pd.DataFrame({
        "source": rng.choice(["ham10000", "isic2019", "isic2020"], n),
        "label": np.where(rng.random(n) < 0.3, "malignant", "benign"),
        "lesion_id": [f"L{x}" for x in lesion],
        "patient_id": [f"P{x}" if i % 2 else "" for i, x in enumerate(patient)],
    })


def test_groups_join_lesions_patients_and_duplicates():
    df = pd.DataFrame({"lesion_id": ["a", "a", "b", "c", "", ""], "patient_id": ["", "", "p", "p", "", ""]})
    g = group_ids(df, dup_pairs=[(3, 4)])
    assert g[0] == g[1] and g[2] == g[3] == g[4] and g[5] not in (g[0], g[2]) and g[0] != g[2]


def test_no_group_crosses_splits_and_classes_are_stratified():
    df = _table()
    groups = group_ids(df, dup_pairs=[(0, 399), (5, 6)])
    df["split"] = assign_splits(df, groups, 0.15, 0.2, seed=1)
    assert crossing_groups(df, "lesion_id") == [] and crossing_groups(df.assign(g=groups), "g") == []
    assert df.split[0] == df.split[399] and df.split[5] == df.split[6]
    frac = df.groupby("split").size() / len(df)
    assert abs(frac["test"] - 0.2) < 0.07 and abs(frac["val"] - 0.15) < 0.07
    mal = df.groupby("split").label.apply(lambda s: (s == "malignant").mean())
    overall = (df.label == "malignant").mean()
    assert (abs(mal - overall) < 0.08).all(), mal.to_dict()


def test_a_test_share_above_half_is_held_out_whole_groups_and_all():
    # one fold of k can hold at most half (k >= 2): 2/3 was once drawn as 1/2, silently
    df = _table(n=1200, seed=3)
    groups = group_ids(df, [])
    df["split"] = assign_splits(df, groups, 0.067, 0.667, seed=1)
    frac = df.groupby("split").size() / len(df)
    assert abs(frac["test"] - 0.667) < 0.05 and abs(frac["val"] - 0.067) < 0.03, frac.to_dict()
    assert crossing_groups(df.assign(g=groups), "g") == []
    mal = df.groupby("split").label.apply(lambda s: (s == "malignant").mean())
    assert (abs(mal - (df.label == "malignant").mean()) < 0.08).all(), mal.to_dict()


def test_splits_are_seeded():
    df = _table()
    g = group_ids(df, [])
    assert (assign_splits(df, g, 0.15, 0.2, 7) == assign_splits(df, g, 0.15, 0.2, 7)).all()
    assert (assign_splits(df, g, 0.15, 0.2, 7) != assign_splits(df, g, 0.15, 0.2, 8)).any()


def test_prepared_demo_has_no_leak_and_groups_cross_source_copies(prepared_session):
    _, m = prepared_session
    for key in ("lesion_id", "patient_id", "duplicate_cluster", "group"):
        assert crossing_groups(m, key) == []
    # the demo re-publishes HAM10000 images in ISIC 2019: one row each, the HAM10000 one, naming the copy
    assert not m.image_id.duplicated().any()
    assert m[m.source == "ham10000"].also_in.str.startswith("isic2019/").sum() >= 1
    assert set(m.split) == {"train", "val", "test"}
    assert set(m[m.split == "test"].source) >= {"ham10000"}
