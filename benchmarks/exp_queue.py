"""Queued experiments against workspace runs, side by side in one fresh copy of the repository.

    python benchmarks/exp_queue.py                 # 4 ratio experiments per phase
    python benchmarks/exp_queue.py --epochs 4 --experiments 2 --skip-copy   # the figures in docs/performance.md

The copy starts from this repository's outputs (its DVC cache, read through `cache.dir`; nothing in it
is changed, experiments only add objects), so no full `dvc repro` is needed first. Then, for N
experiments per phase (ratio 0 and 1, each phase with seeds of its own, so that none comes back
from DVC's run cache):
  1. N `dvc exp run` in the workspace, one after the other;
  2. N `dvc exp run --queue`, `dvc queue start -j 1`, outputs copied into the queue's clones (DVC's
     default cache.type; left out with --skip-copy) and then hard-linked: the queue's own cost;
  3. the same with `-j 2` (linked): throughput of two workers on the same cores.
Prints wall times and the ratios the issue asks for (targets: -j 2 no slower than the N workspace
runs; queue overhead per experiment under 15 %), and counts the MLflow runs that landed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.exp_ratio import REPO, copy_repo, sh  # noqa: E402

RATIOS = ("0.0", "1.0")


def grid(n: int, phase: int) -> list[tuple[str, str]]:
    """n (ratio, seed) pairs; every phase its own seeds: a repeated parameter set would come back from
    DVC's run cache in seconds instead of training."""
    return [(RATIOS[i % 2], str(100 * (phase + 1) + i // 2)) for i in range(n)]


def wait_for_queue(work: Path, n: int, timeout: float = 7200) -> None:
    """Until `dvc queue status` shows n finished tasks and nothing queued or running."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        out = subprocess.run(["dvc", "queue", "status"], cwd=work, capture_output=True, text=True).stdout
        if "Failed" in out:
            raise SystemExit(f"a queued experiment failed:\n{out}")
        if out.count("Success") >= n and "Running" not in out and "Queued" not in out:
            return
        time.sleep(5)
    raise SystemExit("queue did not finish")


def runs_landed(work: Path) -> int:
    code = ("from dermsynth import tracking; r = tracking.runs(); "
            "print(int(r['metrics.isic_auc'].notna().sum()) if 'metrics.isic_auc' in r else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                         env={**os.environ, "DVC_ROOT": str(work), "PYTHONPATH": str(work)}).stdout
    return int(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=0, help="train.epochs for every run (0: as in params.yaml)")
    ap.add_argument("--experiments", type=int, default=4, help="experiments per phase")
    ap.add_argument("--skip-copy", action="store_true", help="no queue phase with copied outputs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-queue-")) / "dermsynth"
    copy_repo(work)
    sh(["git", "init", "-q"], work)
    if args.epochs:
        p = work / "params.yaml"
        p.write_text(p.read_text().replace("  epochs: 12\n", f"  epochs: {args.epochs}\n"))
    sh(["dvc", "config", "--local", "cache.dir", str(REPO / ".dvc" / "cache")], work)
    sh(["dvc", "checkout", "-q"], work)
    t, out = sh(["dvc", "repro"], work)  # only the classifier side when --epochs changed the training
    print(f"baseline: {t:.0f} s ({out.count('Running stage')} stages ran)")
    sh(["git", "add", "-A"], work)
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "baseline"], work)
    shutil.rmtree(work / "mlruns", ignore_errors=True)
    (work / "mlflow.db").unlink(missing_ok=True)

    times: dict[str, float] = {}
    n = args.experiments
    t0 = time.perf_counter()
    for ratio, seed in grid(n, 0):
        sh(["dvc", "exp", "run", "-S", f"ratio={ratio}", "-S", f"seed={seed}"], work)
        sh(["git", "checkout", "params.yaml"], work)
    times["workspace"] = time.perf_counter() - t0
    # copy: DVC's default link type, every queued clone copies every output; link: hard links (the
    # docs/scale_out.md's `dvc config --local cache.type reflink,hardlink,copy`)
    phases = [(1, "copy"), (1, "link"), (2, "link")][1 if args.skip_copy else 0:]
    for phase, (jobs, links) in enumerate(phases, start=1):
        sh(["dvc", "config", "--local", "cache.type", "copy" if links == "copy" else "reflink,hardlink,copy"], work)
        for ratio, seed in grid(n, phase):
            sh(["dvc", "exp", "run", "--queue", "-S", f"ratio={ratio}", "-S", f"seed={seed}"], work)
        t0 = time.perf_counter()
        sh(["dvc", "queue", "start", "-j", str(jobs)], work)
        wait_for_queue(work, n)
        times[f"queue -j {jobs} {links}"] = time.perf_counter() - t0
        subprocess.run(["dvc", "queue", "remove", "--success"], cwd=work, capture_output=True)
    landed = runs_landed(work)
    print()
    for k, v in times.items():
        print(f"{k:18s}: {v:7.1f} s for {n} experiments ({v / n:6.1f} s each)")
    ws = times["workspace"]
    for links in ("copy", "link"):
        if f"queue -j 1 {links}" in times:
            print(f"queue -j 1 ({links}) overhead per experiment: {times[f'queue -j 1 {links}'] / ws - 1:+.1%} "
                  "(target < 15 %)")
    print(f"queue -j 2 (link) / {n} workspace runs: {times['queue -j 2 link'] / ws:.2f} (target <= 1.00)")
    print(f"queue -j 2 / queue -j 1 (link)      : {times['queue -j 2 link'] / times['queue -j 1 link']:.2f}")
    print(f"MLflow runs with test metrics: {landed} of {len(times) * n * 2} (two models per experiment)")
    print(json.dumps({k: round(v, 1) for k, v in times.items()}))


if __name__ == "__main__":
    main()
