"""Perceptual-hash duplicate detection across sources (exact copies and near-duplicates)."""
from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image


def phash64(img: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB array."""
    h = imagehash.phash(Image.fromarray(img), hash_size=8)
    return int("".join("1" if b else "0" for b in h.hash.flatten()), 2)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))])


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 2048) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most `max_distance` bits.

    Vectorised XOR + popcount in row chunks: 30k images (all of ISIC 2020) take seconds, not the
    hours of a Python double loop.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for s in range(0, len(h), chunk):
        d = np.bitwise_count(h[s : s + chunk, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii + s
        pairs += list(zip((ii[keep] + s).tolist(), jj[keep].tolist()))
    return pairs
