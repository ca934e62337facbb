"""One way to spread per-image work over cores, with a progress bar."""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def n_workers(requested: int) -> int:
    """0 means every core this process may use."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    # Each worker is single-threaded: parallelism comes from processes, not from OpenCV/BLAS threads.
    import cv2

    cv2.setNumThreads(1)


def pmap(fn: Callable[[T], R], items: Sequence[T], workers: int = 0, desc: str = "", chunksize: int = 8) -> list[R]:
    """`[fn(x) for x in items]` over `workers` processes, order kept, deterministic results."""
    workers = min(n_workers(workers), max(len(items), 1))
    bar: Iterable[R]
    if workers == 1:
        _init_worker()
        return [fn(x) for x in tqdm(items, desc=desc, unit="img", mininterval=1.0)]
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        bar = tqdm(pool.imap(fn, items, chunksize=chunksize), total=len(items), desc=desc, unit="img", mininterval=1.0)
        return list(bar)
