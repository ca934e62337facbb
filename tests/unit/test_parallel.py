"""Cores shared among queued DVC experiments: each runs in `<repo>/.dvc/tmp/exps/tmpXXXX` while it runs."""
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
