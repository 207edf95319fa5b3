"""Line-protocol chat clients for the load tests: each one counts, per
sender, the room messages it receives and checks they come in order."""

from __future__ import annotations

import random
import re
import socket as stdlib_socket
from typing import Dict, List, Optional, Set, Tuple

import gevent
import gevent.socket

MESSAGE = re.compile(r"^\[(r\d+)\] (u\d+): m (\d+) (\d+)$")


class LoadClient:
    """One chat user ``u<index>`` in room ``r<index % rooms>``."""

    def __init__(self, port: int, index: int, rooms: int) -> None:
        self.index = index
        self.nick = f"u{index}"
        self.room = f"r{index % rooms}"
        self.sock = gevent.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.port = port
        self.buffer = b""
        self.lines: List[str] = []
        #: sender index -> highest message number seen from it (they only grow)
        self.last: Dict[int, int] = {}
        #: every (sender index, message number) received
        self.got: Set[Tuple[int, int]] = set()
        self.received = 0
        self.disorder: List[str] = []
        self.errors: List[str] = []
        self.eof = False
        self.sent = 0
        self._reader: Optional[gevent.Greenlet] = None

    def join(self) -> None:
        """Connect, pick the nick, join the room, and wait for the /who reply."""
        self.sock.connect(("127.0.0.1", self.port))
        self.sock.sendall(f"/nick {self.nick}\n/join {self.room}\n/who\n".encode())
        while not any(line.startswith(f"* {self.room} (") for line in self.lines):
            if not self._fill():
                raise AssertionError(f"{self.nick}: EOF while joining: {self.lines}")
        self.lines.clear()
        self._reader = gevent.spawn(self._read_loop)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(262144)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            self._line(raw.decode())
        return True

    def _line(self, line: str) -> None:
        match = MESSAGE.match(line)
        if match is None:
            if line.startswith("! "):
                self.errors.append(line)
            self.lines.append(line)
            return
        room, nick, sender, number = match.groups()
        sender_index, n = int(sender), int(number)
        if room != self.room or nick != f"u{sender_index}":
            self.disorder.append(line)
        if n <= self.last.get(sender_index, -1):
            self.disorder.append(f"{line} after {self.last.get(sender_index)}")
        self.last[sender_index] = n
        self.got.add((sender_index, n))
        self.received += 1

    def _read_loop(self) -> None:
        while self._fill():
            pass

    def talk(self, count: int, interval: float, first: int = 0) -> None:
        """Send ``count`` room messages numbered from ``first``, ``interval``
        seconds apart (jittered start)."""
        gevent.sleep(random.random() * interval)
        for n in range(first, first + count):
            self.sock.sendall(f"m {self.index} {n}\n".encode())
            self.sent += 1
            gevent.sleep(interval)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.kill()
        self.sock.close()
