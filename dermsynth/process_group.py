"""Run a server in a process group of its own, and stop the whole group (`dermsynth mlflow`)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies, already stopped, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _stop_group(pgid: int, grace: float = 15.0) -> None:
    """SIGTERM to every process of the group, SIGKILL to what still runs after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not _group_alive(pgid):
                return
            time.sleep(0.2)


# what stops a server run by serve_group; SIGHUP too, since the server's own session no longer gets
# the terminal's hang-up
STOP_SIGNALS = tuple(getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))


def serve_group(cmd: list[str]) -> int:
    """Run a server `cmd` in a process group of its own until it exits, or until a STOP_SIGNALS signal
    reaches this process: it stops the whole group (mlflow ui starts uvicorn, a job runner and its huey
    consumers, which a signal to this process alone would leave serving). Returns the server's exit
    status, 0 when a signal stopped it."""
    stopping: list[int] = []
    procs: list[subprocess.Popen] = []

    def _stop(signum: int, _frame) -> None:  # only signals here: the main thread does the waiting
        stopping.append(signum)
        if procs:
            try:
                os.killpg(procs[0].pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, _stop) for s in STOP_SIGNALS}
    try:
        # its own session, so that a terminal's Ctrl-C reaches this process only and is handled once, here
        procs.append(subprocess.Popen(cmd, start_new_session=True))
        if stopping:  # a signal that came before there was a group to stop
            _stop(stopping[0], None)
        rc = procs[0].wait()
        return 0 if stopping else rc
    finally:
        if procs:
            _stop_group(procs[0].pid)
        for s, h in old.items():
            signal.signal(s, h)
