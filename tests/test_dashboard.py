"""The live monitoring page in headless Chromium: a dropped recording raises an alarm.

Needs Debian's chromium and chromium-driver (``apt-get install chromium
chromium-driver``); the test is skipped without them.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import write_cycles
from tests.servetools import free_port, grindwatch_command, running, train_small

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed (apt-get install chromium "
    "chromium-driver)",
)


def _browser(profile: Path):  # noqa: ANN202
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_for(driver, script: str, timeout: float = 30.0):  # noqa: ANN001, ANN202
    """Run ``script`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"page never satisfied: {script}")


def _serve(tmp_path: Path, *options: str) -> tuple[list[str], str]:
    """Return the command serving tmp_path/bundle with tmp_path/results.sqlite,
    and the service's address."""
    port = free_port()
    command = grindwatch_command(
        "serve",
        "--model",
        str(tmp_path / "bundle"),
        "--port",
        str(port),
        "--results",
        str(tmp_path / "results.sqlite"),
        *options,
    )
    return command, f"http://127.0.0.1:{port}"


def test_dropped_recording_appears_as_alarm(tmp_path, monkeypatch):
    token = "page-token-123"
    monkeypatch.setenv("GRINDWATCH_TOKEN", token)
    write_cycles(tmp_path / "good", 8)
    train_small(tmp_path / "good", output=tmp_path / "bundle")
    folder = tmp_path / "incoming"
    write_cycles(folder, 2, start_seed=300)
    command, base = _serve(
        tmp_path,
        "--watch",
        str(folder),
        "--settle",
        "0.3",
        "--interval",
        "0.2",
    )

    with running(command, tmp_path / "serve.log", f"{base}/health"):
        driver = _browser(tmp_path / "profile")
        try:
            without_token = _status(f"{base}/api/cycles")
            driver.get(f"{base}/#token={token}")
            _wait_for(
                driver,
                "return document.querySelectorAll('#cycles tbody tr').length === 2",
            )
            alarms_before = driver.execute_script(
                "return document.querySelectorAll('tr.alarm').length"
            )

            write_cycles(folder, 1, start_seed=100, anomaly="spike")
            alarm_text = _wait_for(
                driver,
                "const row = document.querySelector('tr.alarm');"
                "return row && row.textContent;",
            )
            points = driver.execute_script(
                "return document.querySelectorAll('#chart circle.alarm').length"
            )
            alarm_count = driver.find_element("id", "n-alarms").text
            assets = driver.execute_script(
                "return [...document.querySelectorAll('script[src], link[href]')]"
                ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
            )
            address = driver.current_url
            driver.save_screenshot(str(tmp_path / "dashboard.png"))

            driver.find_element("css selector", "tr.alarm a").click()
            _wait_for(driver, "return document.querySelectorAll('.bar-row').length")
            top_bar = driver.find_element("css selector", ".bar-row .bar-label").text
            flagged = driver.execute_script(
                "return document.querySelectorAll('#window-chart circle.alarm').length"
            )
            threshold_note = _wait_for(
                driver, "return document.getElementById('threshold-note').textContent"
            )
            time_ticks, share_ticks = (
                driver.execute_script(
                    f"return [...document.querySelectorAll('{chart} text.x-tick')]"
                    ".map(e => e.textContent)"
                )
                for chart in ("#window-chart", "#share-chart")
            )
            driver.save_screenshot(str(tmp_path / "cycle.png"))
            console = [
                entry
                for entry in driver.get_log("browser")
                if entry["level"] == "SEVERE"
            ]
        finally:
            driver.quit()

    assert without_token == 401
    assert token not in address
    assert alarms_before == 0
    assert "cycle_100.csv" in alarm_text
    assert "ALARM" in alarm_text
    assert points == 1
    assert alarm_count == "1"
    assert all(asset.startswith("/static/") for asset in assets), assets
    assert top_bar == "vib_y"
    assert flagged >= 1
    assert time_ticks[:3] == ["0", "0.5", "1"]
    assert threshold_note.startswith("The threshold ")
    assert "of the log training scores" in threshold_note
    assert "The recording score is the max of its window scores" in threshold_note
    assert share_ticks[:2] == ["0", "0.256"]
    assert console == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_page_shows_cycle_alarms_and_older_thresholds(tmp_path):
    from dataclasses import replace

    from grindwatch.config import Config
    from grindwatch.io import RecordingSet
    from grindwatch.online import score_recording
    from grindwatch.pipeline import Model
    from grindwatch.watch import FileKey, ResultStore
    from tests.test_cycles import recording

    config = Config().with_overrides(
        {"windows.length": 256, "detector.family": "pca", "tracking.enabled": False}
    )
    model = Model(config).fit(RecordingSet([recording(seed) for seed in range(20)]))
    model.save(tmp_path / "bundle")
    store = ResultStore(tmp_path / "results.sqlite")
    normal = score_recording(model, recording(401))
    # A result of an earlier model, stored with its own threshold.
    older = replace(normal, threshold=2 * normal.threshold)
    store.add(FileKey("old.csv", 1, 1), older, None)
    store.add(FileKey("normal.csv", 1, 1), normal, None)
    store.add(
        FileKey("idle.csv", 1, 1),
        score_recording(model, recording(401, "missing")),
        None,
    )

    command, base = _serve(tmp_path)
    with running(command, tmp_path / "serve.log", f"{base}/health"):
        driver = _browser(tmp_path / "profile")
        try:
            driver.get(base)
            _wait_for(
                driver,
                "return document.querySelectorAll('#cycles tbody tr').length === 3",
            )
            alarm_text = driver.find_element("css selector", "tr.alarm").text
            normal_text = driver.find_element("css selector", "tr.normal").text
            alarm_title = driver.execute_script(
                "return document.querySelector('#chart circle.alarm title').textContent"
            )
            steps = driver.execute_script(
                "return document.querySelectorAll('#chart polyline.threshold').length"
            )
            lines = driver.execute_script(
                "return document.querySelectorAll('#chart line.threshold').length"
            )
            driver.find_element("css selector", "tr.alarm a").click()
            facts = _wait_for(
                driver,
                "const facts = document.getElementById('facts');"
                "return facts && facts.textContent.includes('cycle check') && "
                "facts.textContent;",
            )
            console = [
                entry
                for entry in driver.get_log("browser")
                if entry["level"] == "SEVERE"
            ]
        finally:
            driver.quit()

    assert "idle.csv" in alarm_text
    assert "ALARM (cycle check)" in alarm_text
    assert "acoustic_emission (cycle check)" in alarm_text
    assert "cycle check" not in normal_text
    assert "cycle check: acoustic_emission" in alarm_title
    assert steps == 1
    assert lines == 0
    assert "flags it, cycle score" in facts
    assert "top channel acoustic_emission (cycle check)" in facts
    assert "(threshold " in facts
    assert console == []
