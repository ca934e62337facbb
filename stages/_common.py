"""Shared plumbing of stage scripts: params, logging, clean failure messages."""
from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dermsynth.config import configure_environment, load_params
from dermsynth.errors import UserError, UserValueError
from dermsynth.paths import MARKER, mark_output_dir
from dermsynth.parallel import concurrent_experiments, torch_threads


def main(run: Callable[[dict], None]) -> None:
    """Run a stage on validated params; a user mistake prints one line and exits 1 (DVC then stops).

    params.yaml is validated (dermsynth.params) before the stage deletes, writes or logs anything."""
    configure_environment()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # diffusers warns once per pipeline about text-encoder LoRA keys we never train: noise in logs
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()
    dlogging.disable_progress_bar()  # per-component loading bars; our own bars show the work
    from transformers.utils import logging as tlogging

    tlogging.disable_progress_bar()
    share_cores_with_queue()
    try:
        params = load_params()
        run(params)
        reports = Path(params["paths"]["reports"])
        if reports.is_dir() and not (reports / MARKER).is_file():  # a new reports folder, made by this stage
            mark_output_dir(reports)
    except UserError as e:  # the user's to fix: one line each; anything else is a bug and keeps its traceback
        fail(e)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        fail(UserError(f"disk full writing {e.filename or 'an output'}: free space and re-run (DVC rebuilds the "
                       "stage's outputs whole)"))


def share_cores_with_queue() -> None:
    """In a queued experiment beside others (`dvc queue start -j N`), libraries default to every core:
    give torch and OpenCV this experiment's share instead (the stages' own `threads` are divided too)."""
    n = concurrent_experiments()
    if n == 1:
        return
    threads = torch_threads(0)
    for name in ("torch", "cv2"):
        if name in sys.modules:
            getattr(sys.modules[name], "set_num_threads" if name == "torch" else "setNumThreads")(threads)
    logging.getLogger("dermsynth").info("queued experiment beside %d other(s): %d thread(s)", n - 1, threads)


def fail(e: Exception) -> None:
    """Print a user error as `ERROR: ...` lines on stderr and exit 1."""
    lines = str(e).splitlines() or [type(e).__name__]
    print("\n" + "\n".join(f"ERROR: {line}" for line in lines), file=sys.stderr)
    sys.exit(1)


def under_launcher() -> bool:
    """True inside `accelerate launch` (it sets the torch.distributed environment)."""
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def relaunch(module: str, processes: int, key: str) -> None:
    """Run `python -m module` (same arguments) again as `processes` processes under `accelerate
    launch`: one per GPU, or CPU processes talking over gloo when there is no GPU."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus and processes > gpus:
        raise UserValueError(f"{key}: {processes} processes but {gpus} GPU(s) here; use at most one per GPU")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    # torchrun's launcher in both cases: on a machine without CUDA the processes join over gloo
    # (the stages open PartialState/Accelerator with cpu=True there); accelerate's --cpu would start one
    cmd += ["--multi_gpu"]
    code = subprocess.run(cmd + ["-m", module, *sys.argv[1:]]).returncode
    if code:
        sys.exit(code)  # the processes printed their own errors
