"""A real headless browser for tests: Debian's chromium, driven over the
Chrome DevTools Protocol (CDP) with the ``websockets`` sync client.

:class:`Chromium` starts ``/usr/bin/chromium`` in a session (process group)
of its own with a fresh profile, reads the DevTools port from
``<profile>/DevToolsActivePort`` and opens one page; :class:`Page` sends CDP
commands to it (``evaluate``, ``type``, ``screenshot``). Every blocking call
of the CDP client runs in gevent's thread pool, so the hub (and a chat
server on it) keeps running while the test waits for the browser. ``close``
kills the whole process group (the browser and its renderers) and waits
for it.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, Optional

import gevent
from gevent.subprocess import Popen
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"

#: Seconds one CDP command, the browser's start or one wait may take.
WAIT = 20.0

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0")


class CdpError(AssertionError):
    """A CDP command failed, or a page script threw."""


class Chromium:
    """A headless chromium with its profile in ``directory`` (its log in
    ``directory/chromium.log``)."""

    def __init__(self, directory: Path, *, width: int = 1000, height: int = 620) -> None:
        self.profile = directory / "profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "chromium.log"
        self.pool = gevent.get_hub().threadpool
        self.stack = ExitStack()
        self._ids = itertools.count(1)
        self.process: Optional[Popen] = None
        self.cdp: Optional[ClientConnection] = None
        with open(self.log_path, "wb") as log:
            self.process = Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                  f"--window-size={width},{height}", "about:blank"],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            port, path = self._devtools_address()
            url = f"ws://127.0.0.1:{port}{path}"
            self.cdp = self.pool.apply(lambda: self.stack.enter_context(
                connect(url, open_timeout=WAIT, close_timeout=2, max_size=64 << 20)))
        except BaseException:
            self.close()
            raise

    def _devtools_address(self) -> tuple:
        """(port, browser path) once chromium wrote DevToolsActivePort."""
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"chromium exited ({self.process.returncode}): {self.log()}")
            try:
                lines = active.read_text().split("\n")
            except FileNotFoundError:
                lines = []
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/devtools/"):
                return int(lines[0]), lines[1].strip()
            gevent.sleep(0.05)
        raise AssertionError(f"chromium wrote no DevToolsActivePort within {WAIT} s: {self.log()}")

    def log(self) -> str:
        """The tail of chromium's output."""
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def command(self, method: str, params: Optional[Dict[str, Any]] = None,
                session: Optional[str] = None, timeout: float = WAIT) -> Dict[str, Any]:
        """Send one CDP command (to the browser, or to a page ``session``)
        and return its result; CdpError if it fails. Events are skipped."""
        assert self.cdp is not None
        cdp = self.cdp
        message_id = next(self._ids)
        message: Dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session

        def call() -> Dict[str, Any]:
            cdp.send(json.dumps(message))
            deadline = time.monotonic() + timeout
            while True:
                reply = json.loads(cdp.recv(max(0.01, deadline - time.monotonic())))
                if reply.get("id") == message_id:
                    return reply

        reply = self.pool.apply(call)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str) -> "Page":
        """A new page (tab) at ``url``, attached for commands, once its
        document has loaded."""
        target = self.command("Target.createTarget", {"url": url})["targetId"]
        session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.wait_for(f"document.readyState === 'complete' && location.href === {json.dumps(url)}",
                      what=f"{url} loaded")
        return page

    def close(self) -> None:
        """Close the CDP connection, kill chromium and every process of its
        group, wait for it."""
        try:
            self.pool.apply(self.stack.close)
        finally:
            self.cdp = None
            process, self.process = self.process, None
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)   # its own group: start_new_session
                except ProcessLookupError:
                    pass
                process.wait(WAIT)
                _wait_group_gone(process.pid)


def _group_alive(pgid: int) -> list:
    """Pids of live (not zombie) processes in process group ``pgid``."""
    alive = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(name))
    return alive


def _wait_group_gone(pgid: int) -> None:
    """Wait until no process of group ``pgid`` is alive (renderers die a
    moment after the browser)."""
    deadline = time.monotonic() + WAIT
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            raise AssertionError(f"chromium processes {_group_alive(pgid)} still alive after SIGKILL")
        gevent.sleep(0.05)


class Page:
    """One tab, commanded through its flattened CDP session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def command(self, method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """One CDP command to this page; its result."""
        return self.browser.command(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises
        awaited); CdpError if it throws."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = WAIT, what: str = "") -> Any:
        """Evaluate ``expression`` until it is truthy; its value. AssertionError
        (with the page's last value) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            gevent.sleep(0.05)
        raise AssertionError(f"{what or expression} not true within {timeout} s (last value {value!r})")

    def type(self, text: str) -> None:
        """Type ``text`` into the focused element, then press Enter."""
        self.command("Input.insertText", {"text": text})
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
        self.command("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **enter})
        self.command("Input.dispatchKeyEvent", {"type": "keyUp", **enter})

    def screenshot(self, path: Path) -> bytes:
        """Save a PNG of the page at ``path``; its bytes."""
        data = base64.b64decode(self.command("Page.captureScreenshot", {"format": "png"})["data"])
        path.write_bytes(data)
        return data

