"""Open an HTML file in headless Chromium with the network blocked, and check it.

Drives Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``),
so it needs no browser download and no WebSocket client. Commands go in on file
descriptor 3 and replies come out on 4, each a JSON message ended by a NUL byte.
It records console errors, uncaught exceptions, log errors and every request
that is not for a ``file:``, ``data:`` or ``about:`` URL, reads where the score
distribution and the recordings table sit on the first screen, and saves a
screenshot.

As a manual check::

    python tests/browser_check.py report.html screenshot.png

prints the findings as JSON and exits 1 when the page has errors or requests.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    # Any host name fails to resolve and any proxied request goes to a closed
    # loopback port, so a page that tries to load something cannot reach out.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--remote-debugging-pipe",
)
LAYOUT_SCRIPT = """
(() => {
  const box = (selector) => {
    const element = document.querySelector(selector);
    if (!element) return null;
    const r = element.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
            width: r.width, height: r.height};
  };
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
  return JSON.stringify({
    viewport: [window.innerWidth, window.innerHeight],
    distribution: box('#distribution img'),
    table: box('#recordings table'),
    first_row: box('#recordings tbody tr'),
    images: document.images.length,
    broken_images: broken.length,
    title: document.title,
  });
})()
"""


@dataclass
class PageCheck:
    """What Chromium saw: problems, outside requests, and the first-screen layout."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)
    screenshot: str = ""


class _Pipe:
    """The DevTools protocol over Chromium's debugging pipe."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the debugging pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"id": self.next_id, "method": method}
        request["params"] = params or {}
        if session:
            request["sessionId"] = session
        os.write(self.write_fd, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message


def _problems(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    errors, requests = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in (
            "error",
            "assert",
        ):
            values = [
                str(arg.get("value", arg.get("description"))) for arg in params["args"]
            ]
            errors.append(f"console.{params['type']}: {' '.join(values)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                requests.append(url)
        elif method == "Network.loadingFailed":
            errors.append(f"load failed: {params.get('errorText')}")
    return errors, requests


def check_page(
    page: str | Path,
    screenshot: str | Path,
    width: int = 1280,
    height: int = 900,
    timeout: float = 60.0,
) -> PageCheck:
    """Load ``page`` in headless Chromium, record problems and save a screenshot."""
    page, screenshot = Path(page).resolve(), Path(screenshot)
    profile = tempfile.mkdtemp(prefix="grindwatch-chromium-")
    to_browser_read, to_browser_write = os.pipe()
    from_browser_read, from_browser_write = os.pipe()

    # Chromium reads commands on descriptor 3 and writes replies on 4; bash moves
    # the pipe ends there before it becomes Chromium (no preexec_fn, which forks
    # unsafely in a process with threads).
    wiring = f'exec 3<&{to_browser_read} 4>&{from_browser_write}; exec "$@"'
    process = subprocess.Popen(
        [
            "bash",
            "-c",
            wiring,
            "bash",
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(to_browser_read, from_browser_write),
        start_new_session=True,
    )
    os.close(to_browser_read)
    os.close(from_browser_write)
    pipe = _Pipe(to_browser_write, from_browser_read)
    try:
        return _inspect(pipe, page, screenshot, width, height, timeout)
    finally:
        try:
            pipe.call("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # The browser ignored Browser.close: end its process group, which holds
            # only the Chromium processes this function started.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        os.close(to_browser_write)
        os.close(from_browser_read)
        shutil.rmtree(profile, ignore_errors=True)


def _inspect(
    pipe: _Pipe, page: Path, screenshot: Path, width: int, height: int, timeout: float
) -> PageCheck:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Runtime", "Log", "Network", "Page"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    pipe.call("Page.navigate", {"url": page.as_uri()}, session=session)
    pipe.wait_for("Page.loadEventFired", timeout=timeout)
    layout = pipe.call(
        "Runtime.evaluate",
        {"expression": LAYOUT_SCRIPT, "returnByValue": True},
        session=session,
    )["result"]["value"]
    shot = pipe.call(
        "Page.captureScreenshot", {"format": "png"}, session=session, timeout=timeout
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors, requests = _problems(pipe.events)
    return PageCheck(errors, requests, json.loads(layout), str(screenshot))


def main(arguments: list[str]) -> int:
    if len(arguments) != 2:
        sys.stderr.write("usage: python tests/browser_check.py PAGE.html SHOT.png\n")
        return 2
    result = check_page(arguments[0], arguments[1])
    print(json.dumps(asdict(result), indent=2))
    return 1 if result.errors or result.requests else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
