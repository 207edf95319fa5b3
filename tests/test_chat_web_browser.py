"""The chat's browser door in a real browser: headless chromium (Debian's
``/usr/bin/chromium``, driven over the DevTools protocol) opens the page
served by ``--web``, picks a nick, types a message that a raw-socket line
client (what ``nc`` would see) receives, and shows what the line client
sends. A screenshot of the page is saved under the test's tmp dir."""

from __future__ import annotations

import json
import struct
from typing import Iterator

import pytest

from _browser import Chromium, Page
from chat_helpers import ChatClient
from gsocket.chat.server import ChatServer

# Chromium's start can be slow on a loaded machine: more than the usual 30 s.
pytestmark = [pytest.mark.timeout(120), pytest.mark.gsocket(timeout=100)]

LINES = "[...document.querySelectorAll('#log .line')].map((row) => row.dataset.line)"
MEMBERS = "[...document.querySelectorAll('#members li')].map((item) => item.textContent)"


@pytest.fixture
def chat(driver) -> Iterator[ChatServer]:
    server = ChatServer("127.0.0.1", 0, web=0)
    server.start()
    yield server
    server.stop(grace=2)


@pytest.fixture
def browser(chat, tmp_path) -> Iterator[Chromium]:
    """Chromium, killed (with its renderers) before the chat server stops."""
    chromium = Chromium(tmp_path)
    yield chromium
    chromium.close()


def _text(page: Page, element_id: str) -> str:
    return page.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def _png_size(data: bytes) -> tuple:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_browser_and_line_client_talk(chat, browser, tmp_path) -> None:
    assert chat.address is not None and chat.web_address is not None
    liner = ChatClient(chat.address[1])
    try:
        liner.greeting()
        liner.send("/nick liner")
        liner.expect("* guest1 is now known as liner")

        page = browser.open(f"http://127.0.0.1:{chat.web_address[1]}/")
        page.wait_for("document.getElementById('status').classList.contains('open')"
                      " && document.getElementById('nick').textContent.startsWith('guest')",
                      what="page connected with a guest nick")
        guest = _text(page, "nick")
        liner.expect(f"* {guest} joined lobby")

        # the nick, set through the page's own form
        page.evaluate("(() => { const input = document.getElementById('line');"
                      " input.value = '/nick webby'; document.getElementById('say').requestSubmit(); })()")
        liner.expect(f"* {guest} is now known as webby")
        page.wait_for("document.getElementById('nick').textContent === 'webby'", what="nick shown")

        # a message typed into the input line and sent with Enter reaches the line client
        page.evaluate("document.getElementById('line').focus()")
        page.type("hello from chromium")
        liner.next_is("[lobby] webby: hello from chromium")
        assert page.evaluate("document.getElementById('line').value") == ""

        # what the line client sends shows up in the page
        liner.send("hi chromium", "/me waves")
        lines = page.wait_for(f"(() => {{ const lines = {LINES};"
                              " return lines.includes('[lobby] * liner waves') && lines; })()",
                              what="line client's messages in the page")
        assert "[lobby] liner: hi chromium" in lines
        assert "[lobby] webby: hello from chromium" in lines     # the page echoes its own
        assert lines.index("[lobby] liner: hi chromium") < lines.index("[lobby] * liner waves")
        assert page.wait_for(f"(() => {{ const m = {MEMBERS}; return m.length === 2 && m; }})()",
                             what="members listed") == ["liner", "webby"]
        assert _text(page, "room") == "lobby"

        # everything the page loaded came from the chat server (no CDN, nothing from outside)
        origin = f"http://127.0.0.1:{chat.web_address[1]}/"
        loaded = page.evaluate("performance.getEntriesByType('resource').map((entry) => entry.name)")
        assert {origin + "chat.js", origin + "chat.css"} <= set(loaded), loaded
        assert all(url.startswith(origin) for url in loaded), loaded

        shot = page.screenshot(tmp_path / "chat-web.png")
        width, height = _png_size(shot)
        assert width >= 600 and height >= 400, (width, height)
        assert (tmp_path / "chat-web.png").stat().st_size == len(shot)

        # the page leaving is the user leaving
        page.command("Page.close")
        liner.expect("* webby left lobby")
        assert liner.who() == "* lobby (1): liner"
    finally:
        liner.close()
