"""Cores shared among queued DVC experiments: each runs in `<repo>/.dvc/tmp/exps/tmpXXXX` while it runs."""
from pathlib import Path

from dermsynth import parallel
from dermsynth.parallel import concurrent_experiments, n_workers, torch_threads


def test_outside_a_queue_a_stage_has_every_core(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert concurrent_experiments() == 1
    assert torch_threads(3) == 3 and n_workers(0) == parallel.cores()


def test_queued_experiments_split_the_cores(tmp_path, monkeypatch):
    exps = tmp_path / "repo/.dvc/tmp/exps"
    for name in ("tmpa1b2", "tmpc3d4", "tmpe5f6"):
        (exps / name).mkdir(parents=True)
    (exps / "celery").mkdir()  # DVC's queue bookkeeping, not an experiment
    monkeypatch.setattr(parallel, "cores", lambda: 8)
    monkeypatch.chdir(exps / "tmpa1b2")
    assert concurrent_experiments() == 3
    assert torch_threads(0) == 2 and torch_threads(6) == 2 and torch_threads(2) == 1  # never 0
    assert n_workers(0) == 2 and n_workers(5) == 5  # an explicit worker count is the user's
    (exps / "tmpc3d4").rmdir()
    assert concurrent_experiments() == 2 and torch_threads(0) == 4


PARENT_USED_OPENCV_THREADS = '''
import cv2, numpy as np
from dermsynth.data.dedup import phash64
from dermsynth.parallel import pmap

if __name__ == "__main__":
    cv2.setNumThreads(4)  # the parent runs OpenCV's thread pool first, as a notebook or a benchmark does
    big = np.random.default_rng(0).random((1500, 2000, 3), dtype=np.float32)
    cv2.GaussianBlur(cv2.resize(big, (1000, 750)), (9, 9), 0)
    imgs = [np.full((64, 64, 3), i, np.uint8) for i in range(16)]
    print(len(pmap(phash64, imgs, workers=2, chunksize=1)), "hashed")
'''


def test_pmap_after_the_parent_ran_opencv_threads_does_not_hang(tmp_path):
    """Workers forked from a process whose OpenCV pool had run waited forever on its copied locks."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(PARENT_USED_OPENCV_THREADS)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0, p.stderr[-3000:]
    assert "16 hashed" in p.stdout
