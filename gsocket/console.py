"""The admin console (skynet's debug console), for any gsocket app.

A line protocol on a TCP port, loopback by default: one command per line,
its reply as lines, then ``<CMD OK>`` or ``<CMD Error>`` on a line of its
own. Built-in commands: ``help``, ``netstat``, ``stat``, ``list``, ``gc``; an
application adds its own with ``commands={"name": fn}``: ``fn(args)`` gets
the words after the command (a list of str whose ``.line`` attribute is the
rest of the line as typed) and returns the reply text; an exception it
raises becomes the error reply. For example::

    console.start("127.0.0.1", 8000, commands={"rooms": lambda args: "lobby 3"})
    $ nc 127.0.0.1 8000
    netstat
    ...
    <CMD OK>
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Callable, Dict, List, Mapping, Optional

import gevent
import greenlet as _greenlet

from . import socket

__all__ = ["start", "stop", "Args", "Command", "MAX_COMMAND"]

logger = logging.getLogger("gsocket.console")

#: Longest command line accepted; a longer one closes the connection.
MAX_COMMAND = 8192

Command = Callable[[List[str]], object]


class Args(List[str]):
    """The words after a command; ``line`` is the rest of the line as typed."""

    line: str = ""


class _Console:
    def __init__(self, commands: Optional[Mapping[str, Command]]) -> None:
        self.builtins: Dict[str, Command] = {
            "help": self.help, "netstat": self.netstat, "stat": self.stat,
            "list": self.list, "gc": self.gc,
        }
        self.commands: Dict[str, Command] = dict(self.builtins)
        for name, fn in (commands or {}).items():
            if not callable(fn) or not name or any(c.isspace() for c in name):
                raise ValueError(f"console command {name!r} must be a word mapped to a callable")
            self.commands[name] = fn
        self.started = time.monotonic()
        self.clients: Dict[int, gevent.Greenlet] = {}

    # ------------------------------------------------------------------ built-ins

    def help(self, args: List[str]) -> str:
        docs = {
            "help": "this list", "netstat": "one line per socket: id type address read write wbuffer",
            "stat": "connections, bytes in/out, greenlets, RSS", "list": "live greenlets",
            "gc": "run the garbage collector",
        }
        return "\n".join(f"{name}\t{docs.get(name, 'application command')}" for name in self.commands)

    @staticmethod
    def netstat(args: List[str]) -> str:
        rows = socket.netstat()
        lines = ["id\ttype\taddress\tread\twrite\twbuffer"]
        lines += [f"{r.id}\t{r.type}\t{r.name}\t{r.read}\t{r.write}\t{r.wbuffer}" for r in rows]
        return "\n".join(lines)

    def stat(self, args: List[str]) -> str:
        rows = socket.netstat()
        connections = sum(1 for r in rows if r.type not in ("LISTEN", "UDP", "BIND"))
        streams = [r for r in rows if r.type != "LISTEN"]
        # type(), not isinstance(): a dead weakref.proxy raises on __class__.
        greenlets = sum(1 for obj in gc.get_objects() if issubclass(type(obj), _greenlet.greenlet))
        return "\n".join([
            f"connections\t{connections}",
            f"listeners\t{sum(1 for r in rows if r.type == 'LISTEN')}",
            f"bytes_in\t{sum(r.read for r in streams)}",
            f"bytes_out\t{sum(r.write for r in streams)}",
            f"wbuffer\t{sum(r.wbuffer for r in rows)}",
            f"greenlets\t{greenlets}",
            f"rss_kib\t{_rss_kib()}",
            f"uptime_s\t{time.monotonic() - self.started:.0f}",
        ])

    @staticmethod
    def list(args: List[str]) -> str:
        lines = []
        for obj in gc.get_objects():
            if issubclass(type(obj), gevent.Greenlet) and not obj.dead:
                target = getattr(obj, "_run", None)
                name = getattr(target, "__qualname__", None) or repr(target)
                lines.append(f"{id(obj):#x}\t{name}")
        lines.sort(key=lambda line: line.split("\t", 1)[1])
        return "\n".join([f"{len(lines)} greenlets"] + lines)

    @staticmethod
    def gc(args: List[str]) -> str:
        before = _rss_kib()
        collected = gc.collect()
        return f"collected {collected} objects; RSS {before} KiB -> {_rss_kib()} KiB"

    # ------------------------------------------------------------------ serving

    def run(self, line: str) -> str:
        """The whole reply to one command line, terminator included."""
        word, _, rest = line.strip().partition(" ")
        if not word:
            return ""
        fn = self.commands.get(word)
        if fn is None:
            return f"unknown command {word!r} (try help)\n<CMD Error>\n"
        args = Args(rest.split())
        args.line = rest.strip()
        try:
            reply = fn(args)
        except Exception as exc:  # noqa: BLE001 - an app command's failure is its reply
            if not isinstance(exc, (ValueError, KeyError, LookupError)):
                logger.exception("console command %r failed", word)
            text = str(exc) or type(exc).__name__
            return f"{text}\n<CMD Error>\n"
        text = "" if reply is None else str(reply)
        return (text + "\n" if text and not text.endswith("\n") else text) + "<CMD OK>\n"

    def serve(self, socket_id: int, peer: str) -> None:
        try:
            socket.start(socket_id)
        except ConnectionError:
            return
        socket.limit(socket_id, MAX_COMMAND * 2)
        logger.info("console: %s connected", peer)
        try:
            while True:
                line = socket.readline(socket_id)
                if line is None:
                    break
                if len(line) > MAX_COMMAND:
                    socket.write(socket_id, b"command too long\n<CMD Error>\n")
                    break
                text = line.rstrip(b"\r").decode("utf-8", "replace")
                if text.strip() in ("quit", "exit"):
                    break
                socket.write(socket_id, self.run(text).encode("utf-8"))
        finally:
            socket.close(socket_id)
            self.clients.pop(socket_id, None)
            logger.info("console: %s disconnected", peer)

    def accepted(self, socket_id: int, peer: str) -> None:
        self.clients[socket_id] = gevent.spawn(self.serve, socket_id, peer)


def _rss_kib() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import resource
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


_consoles: Dict[int, _Console] = {}


def start(host: str = "127.0.0.1", port: int = 0,
          commands: Optional[Mapping[str, Command]] = None) -> int:
    """Listen on ``host:port`` (port 0: any free one; ``socket.address(id)``
    tells which) and serve the console; returns the listen id at once.
    Raises OSError if the address cannot be bound, ValueError for a bad
    command table."""
    console = _Console(commands)
    listen_id = socket.listen(host, port)
    _consoles[listen_id] = console
    socket.start(listen_id, console.accepted)
    logger.info("console listening on %s:%d", *(socket.address(listen_id) or (host, port)))
    return listen_id


def stop(listen_id: int) -> None:
    """Stop the console: close its listener and every console client.
    Blocks the calling greenlet briefly (until they are closed)."""
    console = _consoles.pop(listen_id, None)
    socket.close(listen_id)
    if console is not None:
        for client in list(console.clients.values()):
            client.kill(block=True, timeout=1)
