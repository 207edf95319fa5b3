"""Step 3: a tiny chat. Everyone connected is in one room; a line is a message
to the others; ``/nick NAME`` renames you.

    python docs/tutorial/chat.py --port 8888     # then nc from two terminals
"""

from __future__ import annotations

import argparse
import logging
from typing import Dict, Optional

from gsocket import skynet, socket

logger = logging.getLogger("tutorial.chat")

MAX_LINE = 4096


class Room:
    """Who is here, and how a line reaches them. Only writes: never blocks."""

    def __init__(self) -> None:
        self.members: Dict[int, str] = {}          # socket id -> nick

    def join(self, conn_id: int) -> str:
        """Add a member under a guest nick; return the nick."""
        nick = f"guest{conn_id}"
        self.members[conn_id] = nick
        self.announce(f"* {nick} joined", sender=conn_id)
        return nick

    def leave(self, conn_id: int) -> None:
        """Remove a member (called once, whoever closed)."""
        nick = self.members.pop(conn_id, None)
        if nick is not None:
            self.announce(f"* {nick} left", sender=conn_id)

    def rename(self, conn_id: int, nick: str) -> None:
        """Give a member a new nick and tell the others."""
        old = self.members[conn_id]
        self.members[conn_id] = nick
        self.announce(f"* {old} is now {nick}", sender=conn_id)

    def say(self, conn_id: int, text: str) -> None:
        """A message from a member to everyone else."""
        self.announce(f"{self.members[conn_id]}: {text}", sender=conn_id)

    def announce(self, line: str, sender: Optional[int] = None) -> None:
        """Send one line to every member but ``sender``."""
        self.deliver(line, sender)

    def deliver(self, line: str, sender: Optional[int] = None) -> None:
        """Write one line to the local members but ``sender``."""
        data = (line + "\n").encode()
        for member in list(self.members):
            if member != sender:
                socket.write(member, data)      # False if it just went away: fine


def handle(room: Room, conn_id: int) -> None:
    """One member's session: read lines until the peer closes or quits."""
    socket.start(conn_id)
    socket.limit(conn_id, MAX_LINE)
    nick = room.join(conn_id)
    socket.onclose(conn_id, room.leave)             # runs once, however it ends
    socket.write(conn_id, f"* welcome {nick}: /nick NAME to rename, /quit to leave\n")
    while (raw := socket.readline(conn_id)) is not None:
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if line == "/quit":
            break
        if line.startswith("/nick "):
            room.rename(conn_id, line[6:].strip() or nick)
        elif line:
            room.say(conn_id, line)
    socket.close(conn_id)


def serve(room: Room, host: str = "127.0.0.1", port: int = 0, *, reuseport: bool = False) -> int:
    """Listen and fork one session per connection; return the listen id."""
    listen_id = socket.listen(host, port, reuseport=reuseport)
    socket.start(listen_id, lambda conn_id, addr: skynet.fork(handle, room, conn_id))
    return listen_id


def main() -> None:
    """Run until interrupted."""
    parser = argparse.ArgumentParser(description="step 3: a tiny chat")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    skynet.start(lambda: logger.info("chat on %s:%d", *socket.address(serve(Room(), args.host, args.port))))


if __name__ == "__main__":
    main()
