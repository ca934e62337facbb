"""One way to spread per-image work over cores, with a progress bar."""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def concurrent_experiments(cwd: Path | None = None) -> int:
    """How many DVC experiments run side by side here: a queued experiment (`dvc queue start -j N`) works
    in its own temporary clone, `<repo>/.dvc/tmp/exps/tmpXXXX`, which lives only while it runs; 1 outside
    a queue."""
    here = (cwd or Path.cwd()).resolve()
    exps = here.parent
    if not (here.name.startswith("tmp") and exps.name == "exps" and exps.parent.name == "tmp"):
        return 1
    return max(1, sum(1 for d in exps.iterdir() if d.is_dir() and d.name.startswith("tmp")))


def n_workers(requested: int) -> int:
    """0 means every core this process may use, shared with the experiments running beside it."""
    if requested > 0:
        return requested
    return max(1, cores() // concurrent_experiments())


def torch_threads(requested: int) -> int:
    """Intra-op threads of one stage: `requested` (0 = all cores) divided among the queued experiments
    running at once, so that N workers on the same cores do not oversubscribe them (OpenMP threads that
    outnumber the cores spin and wait on each other)."""
    return max(1, (requested or cores()) // concurrent_experiments())


def _init_worker() -> None:
    # Each worker is single-threaded: parallelism comes from processes, not from OpenCV/BLAS threads.
    import cv2

    cv2.setNumThreads(1)


def _context(fn: Callable) -> mp.context.BaseContext:
    """Workers forked from a clean server process, not from this one: a fork copies the locks of any thread
    pool this process has run (OpenCV's, after one threaded resize here) but not its threads, and the
    first parallel call in the child then waits forever. The server (one per process, started by the first
    call) preloads that call's `fn` module so its workers need not import OpenCV and pandas each; measured
    cost about 1 s per call on the demo, nothing beside minutes of work at archive scale."""
    if "forkserver" not in mp.get_all_start_methods():  # Windows, say: spawn is all there is
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    module = getattr(getattr(fn, "func", fn), "__module__", None)
    if module and module != "__main__":
        ctx.set_forkserver_preload(["dermsynth.parallel", module])
    return ctx


def pmap(fn: Callable[[T], R], items: Sequence[T], workers: int = 0, desc: str = "", chunksize: int = 8) -> list[R]:
    """`[fn(x) for x in items]` over `workers` processes, order kept, deterministic results."""
    workers = min(n_workers(workers), max(len(items), 1))
    bar: Iterable[R]
    if workers == 1:
        _init_worker()
        return [fn(x) for x in tqdm(items, desc=desc, unit="img", mininterval=1.0)]
    with _context(fn).Pool(workers, initializer=_init_worker) as pool:
        bar = tqdm(pool.imap(fn, items, chunksize=chunksize), total=len(items), desc=desc, unit="img", mininterval=1.0)
        return list(bar)
