"""The chat's IRC door with a real IRC client: Debian's ``ii``, which keeps
one directory per server and channel with an ``in`` FIFO to write commands
and messages to and an ``out`` file it logs what it receives to. ii logs in,
joins #lobby, talks with a line-protocol user both ways, gets a private
message, parts and quits; `.ci/run` installs it."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Iterator, List

import gevent
import pytest
from gevent.subprocess import DEVNULL, Popen

from chat_helpers import WAIT, ChatClient
from gsocket.chat.server import ChatServer

pytestmark = pytest.mark.timeout(60)

II = shutil.which("ii")


def _wait_for(what: str, check, timeout: float = WAIT):
    deadline = gevent.get_hub().loop.now() + timeout
    while True:
        result = check()
        if result:
            return result
        if gevent.get_hub().loop.now() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.02)


class Ii:
    """One ii process and its directory tree under ``root``."""

    def __init__(self, root: Path, port: int, nick: str) -> None:
        assert II is not None, "ii is not installed (.ci/run installs Debian's ii)"
        self.server_dir = root / "127.0.0.1"
        self.process = Popen([II, "-s", "127.0.0.1", "-p", str(port), "-n", nick, "-i", str(root)],
                             stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)

    def out(self, channel: str = "") -> List[str]:
        """What ii logged for ``channel`` (the server itself when empty),
        without its timestamps."""
        path = self.server_dir / channel / "out" if channel else self.server_dir / "out"
        if not path.exists():
            return []
        return [line.split(" ", 1)[1] for line in path.read_text().splitlines() if " " in line]

    def expect(self, text: str, channel: str = "") -> str:
        return _wait_for(f"{text!r} in ii's {channel or 'server'} out; it has {self.out(channel)[-5:]}",
                         lambda: next((line for line in self.out(channel) if text in line), None))

    def write(self, line: str, channel: str = "") -> None:
        """Write one line into ii's ``in`` FIFO (of ``channel``, or the server's)."""
        path = self.server_dir / channel / "in" if channel else self.server_dir / "in"
        _wait_for(f"{path}", path.exists)
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except Exception:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def server(driver) -> Iterator[ChatServer]:
    chat = ChatServer("127.0.0.1", 0, irc=0)
    chat.start()
    yield chat
    chat.stop(grace=2)


def test_ii_logs_in_joins_talks_and_leaves(server: ChatServer, tmp_path: Path) -> None:
    assert server.address is not None and server.irc_address is not None
    liner = ChatClient(server.address[1])
    ii = Ii(tmp_path, server.irc_address[1], "iiuser")
    try:
        liner.greeting()
        liner.send("/nick liner")
        liner.expect("* guest")
        ii.expect("Welcome to the gsocket chat, iiuser")
        ii.expect("End of /MOTD command.")

        ii.write("/j #lobby")
        assert "iiuser" in ii.expect("has joined #lobby", "#lobby")
        liner.next_is("* iiuser joined lobby")
        ii.write("hello from ii", "#lobby")
        liner.next_is("[lobby] iiuser: hello from ii")
        liner.send("hello from nc", "single")
        ii.expect("<liner> hello from nc", "#lobby")
        ii.expect("<liner> single", "#lobby")         # one word: still the text after ':'
        liner.send("/me waves")
        ii.expect("<liner> \x01ACTION waves\x01", "#lobby")     # ii logs CTCP as it comes

        liner.send("/msg iiuser psst")
        ii.expect("<liner> psst", "liner")            # ii keeps a directory per private peer
        ii.write("/j liner hi back")                  # ii's way to write to a nick
        liner.next_is("[pm] iiuser: hi back")

        ii.write("/l see you", "#lobby")
        liner.next_is("* iiuser left lobby (see you)")
        ii.write("/q bye")
        _wait_for("ii to exit after /q", lambda: ii.process.poll() is not None)
        _wait_for("the chat to forget iiuser", lambda: server.service.core.user("iiuser") is None)
        liner.send("/msg iiuser anyone?")
        liner.next_is("! no such nick: iiuser")
    finally:
        ii.stop()
        liner.close()
