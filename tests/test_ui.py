"""The MLflow UI shows the pipeline's runs: a real `mlflow server` and headless Chromium (no mocks)."""
from __future__ import annotations

import json
import shutil
import sys
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from servers import free_port, serve

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def ui(pipeline: Path, tmp_path_factory):
    port = free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    log = tmp_path_factory.mktemp("ui") / "server.log"
    with serve([mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{pipeline}/mlflow.db",
                "--host", "127.0.0.1", "--port", str(port)], f"http://127.0.0.1:{port}/health", pipeline, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: `apt-get install chromium` (.ci/run does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _runs(pipeline: Path):
    client = MlflowClient(f"sqlite:///{pipeline}/mlflow.db")
    exp = client.get_experiment_by_name("reprotext")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    return exp.experiment_id, runs


def test_runs_table_shows_the_pipeline_and_a_metric_column(ui, browser, pipeline, tmp_path):
    from playwright.sync_api import expect

    exp_id, runs = _runs(pipeline)
    parent = next(name for name in runs if name.startswith("pipeline "))
    page = browser.new_page(viewport={"width": 1800, "height": 1000})
    page.goto(f"{ui}/#/experiments/{exp_id}/runs", wait_until="load")
    expect(page.get_by_text(parent[:20]).first).to_be_visible(timeout=90_000)
    if page.get_by_role("button", name="Close").count():
        page.get_by_role("button", name="Close").first.click()  # the assistant side panel
    page.get_by_role("button", name="Columns").click()
    page.get_by_text("evaluate/source/test/accuracy", exact=True).first.click()
    page.keyboard.press("Escape")
    header = page.get_by_role("columnheader", name="evaluate/source/test/accuracy").first
    header.scroll_into_view_if_needed()
    expect(header).to_be_visible()
    page.screenshot(path=str(tmp_path / "runs_table.png"), full_page=True)
    assert (tmp_path / "runs_table.png").stat().st_size > 10_000


def test_compare_view_of_two_runs(ui, browser, pipeline, tmp_path):
    from playwright.sync_api import expect

    exp_id, runs = _runs(pipeline)
    ids = [runs["train"].info.run_id, runs["finetune"].info.run_id]
    query = urllib.parse.urlencode({"runs": json.dumps(ids), "experiments": json.dumps([exp_id])})
    page = browser.new_page(viewport={"width": 1800, "height": 1200})
    page.goto(f"{ui}/#/compare-runs?{query}", wait_until="load")
    for text in ("train", "finetune", "dev/loss"):
        expect(page.get_by_text(text, exact=True).first).to_be_visible(timeout=90_000)
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
