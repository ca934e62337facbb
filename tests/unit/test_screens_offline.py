"""The screens the README sends users to work with no network: `dvc plots show`'s page and the MLflow UI.

Drawing is checked in headless Chromium with every host name unresolvable (the CI script installs
Debian's chromium-headless-shell; without a Chromium these two checks are skipped, the rest run)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dermsynth import tracking
from dermsynth.audit.app import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def _browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium here (.ci/run installs chromium-headless-shell)")


def _dom(url: str, budget_ms: int = 20000) -> str:
    p = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", OFFLINE,
                        f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    return p.stdout


class _Loads(HTMLParser):
    """Every URL the page itself would fetch: src/href of script, link, img, iframe."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe", "embed", "object"):
            self.urls += [v for k, v in attrs if k in ("src", "href", "data") and v]


@pytest.fixture(scope="module")
def plots_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots")
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    return out / "index.html"


def test_dvc_plots_page_loads_nothing_from_the_network(plots_page):
    html = plots_page.read_text()
    loads = _Loads()
    loads.feed(html)
    remote = [u for u in loads.urls if u.startswith(("http:", "https:", "//"))]
    assert remote == [], remote
    assert "vegaEmbed(" in html and "cdn.jsdelivr" not in html


def test_dvc_plots_page_draws_every_plot_offline(plots_page):
    n_plots = plots_page.read_text().count("vegaEmbed(")
    dom = _dom(plots_page.as_uri(), 10000)
    assert n_plots >= 4  # ROC and confusion per classifier, LoRA loss per class
    assert dom.count('class="marks"') == n_plots  # vega-embed drew one canvas per plot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_ui_opens_on_the_runs_offline(tmp_path, monkeypatch):
    browser = _browser()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with tracking.start_run("mobilenetv2_100 ratio=0.75 seed=1", {"ratio": 0.75, "model": "mobilenetv2_100"}) as (m, _):
        m.log_metrics({"isic_auc": 0.8, "val_auc": 0.7})
    port = _free_port()
    env = dict(os.environ, DVC_ROOT=str(tmp_path), PYTHONPATH=str(ROOT))
    ui = subprocess.Popen([sys.executable, "-m", "dermsynth.cli", "mlflow", "--port", str(port)], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = ui.stdout.readline().split(": ", 1)[1].split()[0]
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in url
        assert f"viewStateShareKey={tracking.STUDY_VIEW}" in url
        assert wait_until_serving(port, 60)
        study = {"params.`model`", "params.`ratio`", "metrics.`isic_auc`"}
        for _ in range(3):  # a loaded machine can take the page past the budget: look again
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", OFFLINE,
                                  "--window-size=1600,900", "--virtual-time-budget=20000", "--dump-dom", url],
                                 capture_output=True, text=True, timeout=120).stdout
            columns = set(re.findall(r'col-id="((?:params|metrics)\.[^"]*)"', dom))
            if "mobilenetv2_100 ratio=0.75 seed=1" in dom and columns == study:
                break
        assert "mobilenetv2_100 ratio=0.75 seed=1" in dom  # the runs table, not the empty GenAI overview
        # the study view's columns (MLflow's own default shows no param or metric), and only those
        assert columns == study, columns
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        ui.wait(timeout=60)
