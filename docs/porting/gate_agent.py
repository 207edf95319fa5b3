"""The porting guide's worked example: skynet's watchdog + gate + agent, on gsocket.

    python docs/porting/gate_agent.py --port 8002 [--idle 60]

Clients speak netpack frames (2-byte big-endian length, then the payload):
``login NAME`` answers ``welcome NAME``; any other frame, once logged in,
answers ``NAME #N: FRAME`` (N counts that client's frames); before login,
``error: login first``. ``who`` lists the logged-in names. A client silent
for ``--idle`` seconds is kicked by its agent's heartbeat.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Dict, Optional

import gevent

from gsocket import skynet
from gsocket.gate import Gate

logger = logging.getLogger("porting.gate_agent")


class Agent:
    """One client's service (skynet: ``skynet.newservice("agent")``)."""

    def __init__(self, watchdog: "Watchdog", client_id: int, address: str) -> None:
        self.watchdog = watchdog
        self.client_id = client_id
        self.address = address
        self.name: Optional[str] = None
        self.count = 0
        self.last_seen = time.monotonic()
        self.heartbeat = skynet.fork(self.watch_idle)

    def message(self, frame: bytes) -> None:
        """Answer one frame (skynet: the agent's "client" protocol dispatch)."""
        self.last_seen = time.monotonic()
        text = frame.decode("utf-8", "replace")
        if text.startswith("login "):
            self.name = text[6:].strip()
            self.reply(f"welcome {self.name}")
        elif text == "who":
            self.reply(" ".join(sorted(self.watchdog.names())))
        elif self.name is None:
            self.reply("error: login first")
        else:
            self.count += 1
            self.reply(f"{self.name} #{self.count}: {text}")

    def reply(self, text: str) -> None:
        """Send one frame to our client (skynet: ``socketdriver.send(fd, netpack.pack(msg))``)."""
        self.watchdog.gate.send(self.client_id, text)

    def watch_idle(self) -> None:
        """Kick the client after ``idle`` silent seconds (skynet: a forked loop of ``skynet.sleep``)."""
        idle = self.watchdog.idle
        while True:
            skynet.sleep(idle / 4)                      # seconds, not skynet's 1/100 s ticks
            if time.monotonic() - self.last_seen > idle:
                logger.info("agent %d: idle, kicked", self.client_id)
                self.watchdog.gate.closeclient(self.client_id)
                return

    def exit(self) -> None:
        """The client is gone (skynet: the watchdog's ``skynet.send(agent, "lua", "exit")``)."""
        self.heartbeat.kill(block=False)


class Watchdog:
    """The gate's handler (skynet: the watchdog service plus gateserver's handler table)."""

    def __init__(self, idle: float = 60.0) -> None:
        self.idle = idle
        self.agents: Dict[int, Agent] = {}
        self.gate: Gate = None  # type: ignore[assignment]

    def open(self) -> None:
        """The gate listens (skynet: ``handler.open(source, conf)``)."""
        logger.info("gate on %s:%d", *self.gate.address)

    def connect(self, client_id: int, address: str) -> None:
        """A client arrived: give it an agent, then let the gate read it."""
        self.agents[client_id] = Agent(self, client_id, address)
        self.gate.openclient(client_id)

    def message(self, client_id: int, frame: bytes) -> None:
        """One whole frame; frames of one client come in order, one at a time."""
        self.agents[client_id].message(frame)

    def disconnect(self, client_id: int) -> None:
        """Once per client that had ``connect``; the gate closes the socket after."""
        agent = self.agents.pop(client_id, None)
        if agent is not None:
            agent.exit()

    def error(self, client_id: int, message: str) -> None:
        """A socket error or an oversized frame; ``disconnect`` follows."""
        logger.info("client %d: %s", client_id, message)

    def names(self) -> list:
        """The names of the logged-in clients."""
        return [agent.name for agent in self.agents.values() if agent.name]


def serve(host: str = "127.0.0.1", port: int = 0, *, idle: float = 60.0,
          maxclient: int = 1024) -> Gate:
    """Start the gate with a watchdog; return the gate (``gate.address`` has the port)."""
    watchdog = Watchdog(idle)
    watchdog.gate = Gate(watchdog, host, port, maxclient=maxclient, nodelay=True)
    watchdog.gate.start()
    return watchdog.gate


def main() -> None:
    """Run until SIGINT or SIGTERM."""
    import signal

    parser = argparse.ArgumentParser(description="skynet's gate + agent, on gsocket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(lambda: serve(args.host, args.port, idle=args.idle))


if __name__ == "__main__":
    main()
