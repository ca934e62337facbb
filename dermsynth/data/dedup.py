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


def near_duplicate_pairs_exhaustive(hashes: np.ndarray, max_distance: int, chunk: int = 2048) -> list[tuple[int, int]]:
    """Index pairs (i < j) within `max_distance` bits, comparing every pair (XOR + popcount in
    row chunks): quadratic, fine up to a few 10k hashes, and the reference the fast search is tested against."""
    h = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for s in range(0, len(h), chunk):
        d = np.bitwise_count(h[s : s + chunk, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii + s
        pairs += list(zip((ii[keep] + s).tolist(), jj[keep].tolist()))
    return pairs


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int, query_block: int = 65536) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose 64-bit hashes differ in at most `max_distance` bits.

    Multi-index hashing through faiss (`IndexBinaryMultiHash`): the 64 bits are cut into
    max_distance + 1 blocks, and two hashes that differ in at most max_distance bits agree exactly
    on at least one block (pigeonhole), so looking up each block's bucket finds every pair; faiss
    then checks the full distance. 401,059 hashes at distance <= 4 take seconds instead of the
    8 x 10^10 comparisons of the exhaustive search. Queries go in blocks so results stay small.
    """
    h = np.ascontiguousarray(np.asarray(hashes, dtype=np.uint64))
    n_blocks = max_distance + 1
    bits = 64 // n_blocks
    if len(h) < 4096 or bits < 8:  # small inputs, or buckets too coarse to prune: compare all pairs
        return near_duplicate_pairs_exhaustive(h, max_distance)
    import faiss

    codes = h.astype(">u8").view(np.uint8).reshape(-1, 8)
    index = faiss.IndexBinaryMultiHash(64, n_blocks, bits)
    index.add(codes)
    pairs: list[tuple[int, int]] = []
    for s in range(0, len(codes), query_block):
        lims, _, found = index.range_search(codes[s : s + query_block], max_distance + 1)  # strict: d < radius
        query = np.repeat(np.arange(s, s + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = found > query
        pairs += list(zip(query[keep].tolist(), found[keep].tolist()))
    return sorted(pairs)
