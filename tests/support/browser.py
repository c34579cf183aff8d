"""Headless Chromium driven over the DevTools protocol on a pipe, with the standard library only.

    with HeadlessChromium(tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        assert browser.console_errors() == []
        browser.evaluate("document.title")
        browser.screenshot(tmp_path / "page.png")

Chromium reads protocol commands from fd 3 and writes replies to fd 4 when started with
``--remote-debugging-pipe``; messages are JSON separated by NUL bytes. The browser is
Debian's ``chromium`` package (tests skip where /usr/bin/chromium is absent); nothing is
downloaded. Every wait has a deadline, and the process is killed on exit.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--mute-audio", "--remote-debugging-pipe")


class BrowserError(RuntimeError):
    pass


class HeadlessChromium:
    """One headless Chromium, one page; console errors, network failures and exceptions are collected."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1000, timeout: float = 60.0):
        self.profile, self.width, self.height, self.timeout = profile, width, height, timeout
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        self._next_id = 0
        self._session = ""

    def __enter__(self) -> HeadlessChromium:
        if not CHROMIUM.is_file():
            raise BrowserError(f"{CHROMIUM} is absent; install Debian's chromium package (apt-get install chromium)")
        cmd_r, self._write = os.pipe()
        self._read, resp_w = os.pipe()

        def to_fd_3_and_4() -> None:  # in the child, before exec: the protocol pipe ends become fds 3 and 4
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={self.width},{self.height}", "about:blank"],
                                     preexec_fn=to_fd_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(resp_w)
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.proc.poll() is None:
                self._send("Browser.close", {}, session=False)
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, BrowserError):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            for fd in (self._write, self._read):
                try:
                    os.close(fd)
                except OSError:
                    pass

    # ------------------------------------------------------------ protocol

    def _send(self, method: str, params: dict[str, Any], session: bool = True) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session and self._session:
            msg["sessionId"] = self._session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _pump(self, deadline: float, what: str) -> None:
        """Read whatever Chromium sent into events (replies included); wait until ``deadline`` for something."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self._read], [], [], left)[0]:
            raise BrowserError(f"chromium did not answer {what} within {self.timeout:.0f} s")
        chunk = os.read(self._read, 1 << 20)
        if not chunk:
            raise BrowserError(f"chromium exited (code {self.proc.poll()}) while waiting for {what}")
        self._buf += chunk
        while b"\0" in self._buf:
            raw, self._buf = self._buf.split(b"\0", 1)
            self.events.append(json.loads(raw))

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command to the page's session and return its result."""
        ident = self._send(method, params or {})
        deadline = time.monotonic() + self.timeout
        while True:
            for i, msg in enumerate(self.events):
                if msg.get("id") == ident:
                    del self.events[i]
                    if "error" in msg:
                        raise BrowserError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
            self._pump(deadline, method)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for msg in self.events[seen:]:
                if msg.get("method") == method:
                    return msg
            seen = len(self.events)
            self._pump(deadline, method)

    # ------------------------------------------------------------ page

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events = [m for m in self.events if m.get("method") != "Page.loadEventFired"]
        reply = self.call("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {reply['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Exceptions, console.error / console.assert calls and browser log errors (failed loads) so far."""
        self.evaluate("0")  # a round trip: events sent before it are in
        out = []
        for msg in self.events:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        return out

    def screenshot(self, png: Path) -> Path:
        """The whole page (not only the window) as a PNG."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(size["width"], 1), "height": max(size["height"], 1), "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})["data"]
        png.write_bytes(base64.b64decode(data))
        return png
