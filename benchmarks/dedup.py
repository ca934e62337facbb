"""Near-duplicate search at ISIC 2024 scale: faiss multi-index hashing vs the exhaustive search.

    python benchmarks/dedup.py [--n 401059] [--distance 4] [--subset 20000]

401,059 64-bit hashes (ISIC 2024's count) with planted exact and near copies. The exhaustive
search is quadratic, so it is timed on a subset and both are timed on that subset side by side;
the full-size exhaustive time is the subset time scaled by (n / subset)^2.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from dermsynth.data.dedup import near_duplicate_pairs, near_duplicate_pairs_exhaustive


def hashes(n: int, seed: int = 0, copy_share: float = 0.05) -> np.ndarray:
    """Random 64-bit hashes with `copy_share` of them exact or near copies (0-6 bits off) of others."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, n, dtype=np.uint64) | (rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63))
    src, dst = rng.choice(n, (2, int(n * copy_share)), replace=False)
    for i, j in zip(src, dst):
        flips = rng.choice(64, rng.integers(0, 7), replace=False)
        h[j] = h[i] ^ np.uint64(sum(1 << int(f) for f in flips))
    return h


def timed(fn, *args) -> tuple[float, list]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=401_059)
    ap.add_argument("--distance", type=int, default=4)
    ap.add_argument("--subset", type=int, default=20_000)
    a = ap.parse_args()
    h = hashes(a.n)
    t_sub_fast, fast = timed(near_duplicate_pairs, h[: a.subset], a.distance)
    t_sub_slow, slow = timed(near_duplicate_pairs_exhaustive, h[: a.subset], a.distance)
    assert fast == sorted(slow), "multi-index search and exhaustive search disagree"
    t_full, pairs = timed(near_duplicate_pairs, h, a.distance)
    t_slow_full = t_sub_slow * (a.n / a.subset) ** 2
    print(f"subset of {a.subset}: multi-index {t_sub_fast:.2f} s, exhaustive {t_sub_slow:.2f} s, same {len(fast)} pairs "
          f"(ratio {t_sub_slow / t_sub_fast:.1f}x)")
    print(f"{a.n} hashes, distance <= {a.distance}: multi-index {t_full:.1f} s ({len(pairs)} pairs); exhaustive "
          f"extrapolated {t_slow_full:.0f} s; ratio {t_slow_full / t_full:.0f}x")


if __name__ == "__main__":
    main()
