"""Open a local page in headless Chromium with the network off, over the DevTools protocol.

No browser-automation package: Chromium speaks the Chrome DevTools Protocol over a
pair of pipes (``--remote-debugging-pipe``: it reads commands on fd 3 and writes replies
and events on fd 4, each a JSON object ended by a NUL byte), which is all a test needs to
load a page, listen to its console and its requests, and take a screenshot.

:func:`open_page` returns what happened: every request the page made (URL), every console
message and uncaught exception, and a PNG screenshot of the whole page.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STDERR = subprocess.DEVNULL
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
OFFLINE_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
    "--mute-audio", "--hide-scrollbars",
    # any host name resolves to nothing: a request that tried to leave would fail (and is recorded)
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
]


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)
    console: list[dict] = field(default_factory=list)  # {"level", "text"}
    exceptions: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""
    height: int = 0  # of the laid-out page, CSS pixels

    @property
    def errors(self) -> list[str]:
        return [c["text"] for c in self.console if c["level"] in ("error", "assert")] + self.exceptions


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int):
        self.proc, self.w, self.r = proc, write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events[i]
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e


def open_page(path: Path, width: int = 1200, max_height: int | None = None, chromium: str | None = None,
              settle_s: float = 0.5) -> PageVisit:
    """Load ``path`` (a local HTML file) offline; record requests, console and exceptions; screenshot it
    (whole, or its top ``max_height`` CSS pixels)."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    url = path.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="skypile-chromium-") as profile:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def child_fds() -> None:  # the protocol's fixed descriptors: 3 = commands in, 4 = replies out
            a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w))  # out of 3/4's way
            os.dup2(a, 3)
            os.dup2(b, 4)

        proc = subprocess.Popen(
            [exe, *OFFLINE_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=STDERR,
            # close_fds=False: 3 and 4 are made after the fds are closed; Python's own fds are close-on-exec anyway
            close_fds=False, preexec_fn=child_fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(proc, to_browser_w, from_browser_r)
        visit = PageVisit()
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Network.emulateNetworkConditions",
                      {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}, session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired")
            time.sleep(settle_s)
            pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drain events queued meanwhile
            visit.title = pipe.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                                    session=session)["result"].get("value", "")
            metrics = pipe.send("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            visit.height = int(size["height"])
            height = min(visit.height, max_height or visit.height)
            shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
                             session=session)
            visit.screenshot = base64.b64decode(shot["data"])
            for e in pipe.events:
                method, params = e.get("method"), e.get("params", {})
                if method == "Network.requestWillBeSent":
                    visit.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled":
                    text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                    visit.console.append({"level": params.get("type", ""), "text": text})
                elif method == "Log.entryAdded":
                    entry = params["entry"]
                    visit.console.append({"level": entry.get("level", ""), "text": entry.get("text", "")})
                elif method == "Runtime.exceptionThrown":
                    visit.exceptions.append(params["exceptionDetails"].get("text", "exception"))
            try:
                pipe.send("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(to_browser_w)
            os.close(from_browser_r)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return visit
