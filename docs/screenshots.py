"""Retake the screenshots of docs/reading_results.md, in headless Chromium, after `dvc repro`:

    python docs/screenshots.py [plots] [mlflow] [app]      # all three without arguments

- docs/dvc_plots.png: `dvc plots show`'s page (written to a temporary folder), at the first classifier's
  ROC curves and confusion matrices;
- docs/mlflow_runs.png: the runs table that `dermsynth mlflow` opens (the study view: the conditions'
  model, ratio and seed beside the headline metrics per test set);
- docs/app_embeddings.png: the FiftyOne App (`dermsynth app`) with its Embeddings panel on
  `embedding_map`, coloured by origin.

The App's Embeddings panel opens on its list of runs with no colour field whatever the URL, the
dataset or the browser's storage say, so the picture needs clicks: Chromium is driven over its
DevTools protocol (`--remote-debugging-pipe`, standard library only) rather than by `--screenshot`,
and the clicks are the ones docs/reading_results.md gives. The same driver sets the per-browser flags
that would otherwise cover the pages: FiftyOne's "Explore Enterprise" popover (as docs/app_screenshot.py
does) and MLflow's assistant panel. The pictures are 1400 pixels wide (the MLflow one 1600, for all
the study view's columns) and saved with 256 colours (fewer if one would pass 400 KB), to stay small.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE = (1400, 900)
MAX_BYTES = 400_000
MLFLOW_SIZE = (1600, 900)  # the study view's columns side by side, beside MLflow's sidebar
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
APP_FLAGS = {"fiftyone-enterprise-tooltip-seen": "true"}
# MLflow 3.17's assistant panel opens by itself on a browser's first visit and takes a third of the page
MLFLOW_FLAGS = {"mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true", "mlflow.assistant.panelOpen_v1": "false"}


class Chromium:
    """One headless Chromium page, driven over the DevTools protocol on a pipe (Chromium reads commands
    on its fd 3 and answers on its fd 4, one JSON message per NUL-terminated line)."""

    def __init__(self, size: tuple[int, int] = SIZE):
        exe = shutil.which("chromium-headless-shell") or shutil.which("chromium")
        if exe is None:
            raise SystemExit("needs chromium-headless-shell (apt-get install chromium-headless-shell)")
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        theirs_in, self._out = os.pipe()
        self._in, theirs_out = os.pipe()

        def fds() -> None:  # in the child, before exec: dup2 to 3 and 4 also clears close-on-exec
            a, b = os.dup(theirs_in), os.dup(theirs_out)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      f"--user-data-dir={self.profile}", OFFLINE, "--remote-debugging-pipe",
                                      "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(theirs_in)
        os.close(theirs_out)
        self._next, self._waiting = 0, {}
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.resize(size)

    def resize(self, size: tuple[int, int]) -> None:
        self.page("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                                                         "mobile": False})

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._in, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in map(json.loads, messages):
                if m.get("id") in self._waiting:
                    self._waiting.pop(m["id"]).put(m)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 120):
        self._next += 1
        answer: queue.Queue = queue.Queue()
        self._waiting[self._next] = answer
        msg = {"id": self._next, "method": method, "params": params or {}} | ({"sessionId": session} if session else {})
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        m = answer.get(timeout=timeout)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m["result"]

    def page(self, method: str, params: dict | None = None):
        return self.send(method, params, self.session)

    def js(self, expression: str):
        r = self.page("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def goto(self, url: str, storage: dict[str, str] | None = None) -> None:
        """Open `url`; with `storage`, set those localStorage items on its origin and open it again."""
        self.page("Page.navigate", {"url": url})
        if storage:
            self.wait("document.readyState === 'complete'")
            self.js(";".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)})" for k, v in storage.items()))
            self.page("Page.navigate", {"url": "about:blank"})
            self.page("Page.navigate", {"url": url})

    def wait(self, expression: str, seconds: float = 120):
        """The value of `expression` once it is truthy (polled; an element found counts as true)."""
        end, error = time.monotonic() + seconds, ""
        while time.monotonic() < end:
            try:
                if v := self.js(f"(() => {{ const v = ({expression}); return v instanceof Node || v; }})()"):
                    return v
            except RuntimeError as e:  # the page is navigating, or it lacks what `expression` reads
                error = f" ({e})"
            time.sleep(0.5)
        raise SystemExit(f"the page never showed: {expression}{error}")

    def click(self, selector_js: str, seconds: float = 120) -> None:
        """A real mouse click (press and release) on the centre of the element `selector_js` finds."""
        x, y = self.wait(f"(() => {{ const e = {selector_js}; if (!e) return null; const r = e.getBoundingClientRect();"
                         " return r.width > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null; })()", seconds)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 10) -> None:
        """Press the mouse at `start`, move it to `end` in `steps`, release it there."""
        self.page("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": start[0], "y": start[1]})
        self.page("Input.dispatchMouseEvent", {"type": "mousePressed", "x": start[0], "y": start[1], "button": "left",
                                               "buttons": 1, "clickCount": 1})
        for i in range(1, steps + 1):
            x, y = (start[k] + (end[k] - start[k]) * i / steps for k in (0, 1))
            self.page("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left",
                                                   "buttons": 1})
        self.page("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": end[0], "y": end[1], "button": "left",
                                               "buttons": 0, "clickCount": 1})

    def screenshot(self, out: Path, clip: tuple[float, float, float, float] | None = None) -> None:
        """The page as it shows, or the part `clip` (x, y, width, height in the page's CSS pixels)."""
        from io import BytesIO

        from PIL import Image

        params = {"format": "png"}
        if clip:
            params |= {"clip": dict(zip(("x", "y", "width", "height"), clip), scale=1), "captureBeyondViewport": True}
        png = base64.b64decode(self.page("Page.captureScreenshot", params)["data"])
        img = Image.open(BytesIO(png)).convert("RGB")
        for colours in (256, 128, 64):  # fewer only where photographs make 256 too big for the repository
            img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
            if out.stat().st_size <= MAX_BYTES:
                break
        print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({out.stat().st_size // 1024} KB)")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, RuntimeError, queue.Empty):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def _server(args: list[str], first_line: bool = False) -> tuple[subprocess.Popen, str]:
    """Start `dermsynth <args>` in a session of its own; with `first_line`, also return what it prints first."""
    p = subprocess.Popen([sys.executable, "-m", "dermsynth.cli", *args], cwd=ROOT, start_new_session=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True,
                         stdout=subprocess.PIPE if first_line else None)
    if not first_line:
        return p, ""
    line = p.stdout.readline()
    threading.Thread(target=shutil.copyfileobj, args=(p.stdout, sys.stdout), daemon=True).start()  # never fills up
    return p, line


def _stop(p: subprocess.Popen, sig: int) -> None:
    p.send_signal(sig)
    p.wait(timeout=180)


def plots(browser: Chromium, out: Path) -> None:
    """`dvc plots show`'s page, scrolled to the first classifier's ROC curves and confusion matrices."""
    folder = Path(tempfile.mkdtemp(prefix="dvc-plots-"))
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(folder)], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    try:
        browser.goto((folder / "index.html").as_uri())
        browser.wait("document.readyState === 'complete' && document.querySelector('[id$=_roc_csv] .marks') &&"
                     " document.querySelectorAll('.marks').length === document.querySelectorAll('.vega-embed').length")
        # the first classifier's two plots side by side: from the higher top to the lower bottom of the two,
        # or to the top of the next plot, whichever comes first
        top, bottom = browser.js(
            "(() => { const roc = document.querySelector('[id$=_roc_csv]');"
            " const two = [roc, document.getElementById(roc.id.replace(/_roc_csv$/, '_confusion_csv'))]"
            ".filter(Boolean);"
            " const boxes = two.map(e => e.getBoundingClientRect()), top = Math.min(...boxes.map(b => b.top));"
            " const next = [...document.querySelectorAll('[id$=_csv]')].filter(e => !two.includes(e))"
            ".map(e => e.getBoundingClientRect().top).filter(t => t > top + 10);"
            " return [top, Math.min(...boxes.map(b => b.bottom + 6), ...next)]; })()")
        browser.screenshot(out, clip=(0, top + 2, SIZE[0], bottom - top - 2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mlflow(browser: Chromium, out: Path, port: int) -> None:
    """The runs table that `dermsynth mlflow`'s link opens."""
    from dermsynth.audit.app import wait_until_serving

    ui, line = _server(["mlflow", "--port", str(port)], first_line=True)
    try:
        url = line.split(": ", 1)[1].split()[0]
        if not wait_until_serving(port, 180):
            raise SystemExit(f"the MLflow UI did not answer on port {port}")
        browser.resize(MLFLOW_SIZE)
        browser.goto(url, MLFLOW_FLAGS)
        browser.wait("document.querySelectorAll('.ag-center-cols-container .ag-row').length > 0")
        time.sleep(3)  # the cells' values come in after the rows
        browser.screenshot(out)
    finally:
        browser.resize(SIZE)
        _stop(ui, signal.SIGTERM)


def app(browser: Chromium, out: Path, port: int, dataset: str = "dermsynth") -> None:
    """The App beside its Embeddings panel on `embedding_map`, coloured by origin: the clicks of
    docs/reading_results.md (`+` beside the Samples tab, Embeddings, `embedding_map`, Color by, origin)."""
    from dermsynth.audit.app import wait_until_serving

    server, _ = _server(["app", "--port", str(port), "--dataset", dataset])
    try:
        if not wait_until_serving(port, 600):  # a first `dermsynth app` builds the dataset first
            raise SystemExit(f"the App did not answer on port {port}")
        browser.goto(f"http://127.0.0.1:{port}/", APP_FLAGS)
        browser.wait("document.querySelector('[data-cy=new-panel-btn]') && document.querySelector('[data-cy=looker]')")
        time.sleep(2)
        if not browser.js("!!document.querySelector('[data-cy=panel-tab-embeddings]')"):  # the session may have it open
            browser.click("document.querySelector('[data-cy=new-panel-btn]')")
            browser.click("document.querySelector('[data-cy=new-panel-option-Embeddings]')")
        # the map wider than the grid: the divider between the two panels dragged to the left
        sash = browser.wait("(() => { const r = document.querySelector('.split-view .sash-vertical')"
                            "?.getBoundingClientRect(); return r && [r.x + r.width / 2, r.y + r.height / 2]; })()")
        browser.drag(sash, (SIZE[0] * 0.5, sash[1]))
        # the grid lays its columns out for the new width only when it loads: the App's session keeps the
        # panels and their sizes, so a reload shows them again, the grid filling its narrower panel
        time.sleep(2)
        browser.page("Page.reload")
        browser.wait("document.querySelector('[data-cy=looker]') && document.querySelector('.emb-run-card')")
        browser.click("[...document.querySelectorAll('.emb-run-card')]"
                      ".find(e => e.innerText.includes('embedding_map'))")
        origin = "[...document.querySelectorAll('[role=option]')].find(e => e.innerText.trim() === 'origin')"
        for attempt in range(5):  # the menu stays shut when clicked while the map is still loading
            browser.click("document.querySelector('button[aria-label=\"Color by\"]:not([disabled])')")
            try:
                browser.click(origin, seconds=10)
                break
            except SystemExit:
                if attempt == 4:
                    raise
        browser.wait("document.querySelector('.emb-colorby')?.innerText.includes('origin')"
                     " && !document.querySelector('.emb-colorby-spinner')?.children.length")
        time.sleep(5)  # the points are drawn on a canvas: give the colours time to come in
        browser.screenshot(out)
    finally:
        _stop(server, signal.SIGTERM)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", help="plots, mlflow, app (default: all three)")
    ap.add_argument("--mlflow-port", type=int, default=5001)
    ap.add_argument("--app-port", type=int, default=5152)
    ap.add_argument("--dataset", default="dermsynth", help="the FiftyOne dataset `dermsynth app` serves")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    which = args.which or ["plots", "mlflow", "app"]
    if set(which) - {"plots", "mlflow", "app"}:
        ap.error(f"unknown screenshot(s): {' '.join(sorted(set(which) - {'plots', 'mlflow', 'app'}))}")
    browser = Chromium()
    try:
        if "plots" in which:
            plots(browser, args.out / "dvc_plots.png")
        if "mlflow" in which:
            mlflow(browser, args.out / "mlflow_runs.png", args.mlflow_port)
        if "app" in which:
            app(browser, args.out / "app_embeddings.png", args.app_port, args.dataset)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
