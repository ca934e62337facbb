"""`dvc repro` from scratch vs `dvc exp run -S ratio=0.75` after it, in a fresh copy, side by side.

    python benchmarks/exp_ratio.py            # the demo as configured in params.yaml
    python benchmarks/exp_ratio.py --quick    # smaller synthetic set (generate.n_per_class=300)

Prints both wall times, their ratio (target: the experiment takes at most 1/4 of the full run)
and the stages that each one ran.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env_path = f"{Path(sys.executable).parent}:" + __import__("os").environ["PATH"]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**__import__("os").environ, "PATH": env_path})
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t, p.stdout


def copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-exp-")) / "dermsynth"
    copy_repo(work)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b",
                                                                  "commit", "-qm", "bench"], ["dvc", "pull", "-q", "data.dvc"]):
        sh(cmd, work)
    if args.quick:
        p = work / "params.yaml"
        p.write_text(p.read_text().replace("n_per_class: 3000", "n_per_class: 300"))
        sh(["git", "commit", "-qam", "quick"], work)
    full, out_full = sh(["dvc", "repro"], work)
    sh(["git", "add", "-A"], work)
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "repro"], work)
    exp, out_exp = sh(["dvc", "exp", "run", "-S", "ratio=0.75"], work)
    stages = lambda out: re.findall(r"Running stage '([^']+)'", out)  # noqa: E731
    print(f"\nfull dvc repro          : {full:7.1f} s  stages: {', '.join(stages(out_full))}")
    print(f"dvc exp run -S ratio=.75: {exp:7.1f} s  stages: {', '.join(stages(out_exp))}")
    print(f"experiment / full       : {exp / full:.2f} (target <= 0.25)")


if __name__ == "__main__":
    main()
