"""Retake docs/app.png: the FiftyOne App on the demo's dataset, in headless Chromium.

    python docs/app_screenshot.py [--port 5152]        # after `make run`; needs chromium-headless-shell

FiftyOne 1.22's App has no setting for its "Explore Enterprise" popover: it opens once per browser
until its Dismiss button stores `fiftyone-enterprise-tooltip-seen` in the page's localStorage. So
the browser profile gets that flag first, from a one-line page served on the App's own origin
(localStorage is per origin), and the App is photographed with the same profile.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from dermsynth.audit.app import wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
FLAG = "fiftyone-enterprise-tooltip-seen"


def chromium(profile: Path, *args: str) -> None:
    exe = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if exe is None:
        raise SystemExit("needs chromium-headless-shell (apt-get install chromium-headless-shell)")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", *args],
                   check=True, capture_output=True, timeout=180)


def dismiss_popover(profile: Path, port: int) -> None:
    page = Path(tempfile.mkdtemp()) / "index.html"
    page.write_text(f"<script>localStorage.setItem('{FLAG}', 'true')</script>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(page.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        chromium(profile, "--virtual-time-budget=2000", "--dump-dom", f"http://127.0.0.1:{port}/")
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5152)
    ap.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    args = ap.parse_args()
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    dismiss_popover(profile, args.port)
    app = subprocess.Popen([sys.executable, "-m", "dermsynth.cli", "app", "--port", str(args.port)], cwd=ROOT,
                           start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        if not wait_until_serving(args.port, 120):
            raise SystemExit(f"the App did not answer on port {args.port}")
        chromium(profile, "--window-size=1400,900", "--virtual-time-budget=30000", f"--screenshot={args.out}",
                 f"http://127.0.0.1:{args.port}/")
    finally:
        os.killpg(app.pid, signal.SIGINT)
        app.wait(timeout=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
