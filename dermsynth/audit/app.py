"""`dermsynth app`: the FiftyOne App on 127.0.0.1, stopped cleanly by Ctrl-C or SIGTERM.

FiftyOne 1.22 runs its App server and MongoDB under wrappers in their own process groups, so
killing the launcher's group leaves them behind; closing the session from a signal handler is
what stops them. `launch_app` would also silently attach to anything already serving the port,
so the port is checked first.
"""
from __future__ import annotations

import signal
import socket
import threading

from dermsynth.errors import UserError

ADDRESS = "127.0.0.1"


def port_free(port: int, address: str = ADDRESS) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def wait_until_serving(port: int, seconds: float = 120, address: str = ADDRESS) -> bool:
    """True once http://address:port/ answers, False after `seconds`."""
    import time
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://{address}:{port}/", timeout=1)
            return True
        except OSError:
            time.sleep(0.5)
    return False


def serve(dataset_name: str, port: int = 5151) -> None:
    """Serve `dataset_name` until SIGINT/SIGTERM; returns after the App and its database stopped."""
    if not port_free(port):
        raise UserError(f"port {port} on {ADDRESS} is already in use (another App?); choose one with --port")
    import fiftyone as fo

    ds = fo.load_dataset(dataset_name)
    session = fo.launch_app(ds, port=port, address=ADDRESS, auto=False)
    stop = threading.Event()

    def _stop(signum, _frame):
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"FiftyOne App serving '{dataset_name}' ({len(ds)} samples) at http://{ADDRESS}:{port} - Ctrl-C to stop",
          flush=True)
    try:
        stop.wait()
    finally:
        print("stopping the App and its database...", flush=True)
        session.close()
        for s, h in old.items():
            signal.signal(s, h)
