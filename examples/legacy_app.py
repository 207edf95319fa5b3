"""A legacy, thread-and-blocking-call code base served cooperatively by gsocket.

    python examples/legacy_app.py --host 127.0.0.1 --port 8890 --backend-delay 0.2 [--redis URL]
    python -m gevent.monkey examples/legacy_app.py --port 8890     # the same, patched by gevent's launcher

Patch order: ``gevent.monkey.patch_all()`` must run before anything else
imports ``socket``, ``ssl``, ``threading`` or ``time`` (so it is the first
statement below, or use ``python -m gevent.monkey``). Then the legacy code
(``legacy_code.py``: urllib.request, http.client, socket.create_connection,
time.sleep, threading.Thread, redis-py) runs unchanged, its threads are
greenlets and its blocking calls yield to the hub: one slow call never
holds up the other clients. The slow HTTP backend it calls
(``legacy_backend.py``, a ThreadingHTTPServer whose answers take
``--backend-delay`` seconds) is started as a process of its own. gsocket itself needs no patching and
patches nothing.

A line protocol (try ``nc 127.0.0.1 8890``); every line gets one line back,
``ok ...`` or ``error ...``, after one legacy call:

    lookup WORD   urllib.request GET to the backend (also any line that is no command)
    shout TEXT    http.client POST to the backend
    raw WORD      a blocking socket.create_connection speaking HTTP/1.0
    nap           time.sleep(backend delay)
    cache WORD    redis-py (needs --redis), the backend on a miss
    thread WORD   lookup in a legacy threading.Thread, which writes the reply
                  itself with gsocket's socket.write on the connection id
    stats         legacy calls counted from the audit socket (see below)
    quit          close the connection

The legacy code reports every call on an audit socket it made itself (one
end of a ``socket.socketpair``); the other end is adopted into gsocket with
``socket.bind(fd)`` and read here with ``socket.readline``.
Stops cleanly on SIGTERM or SIGINT.
"""

from gevent import monkey

monkey.patch_all()      # first of all: see the docstring

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket as stdlib_socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, List, Optional  # noqa: E402

import gevent  # noqa: E402

# ``python -m gevent.monkey script.py`` does not put the script's folder on sys.path
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from gsocket import Connection, ConnectionClosed, skynet  # noqa: E402
from gsocket import socket as gsock  # noqa: E402
from legacy_code import LegacyClient  # noqa: E402

__all__ = ["LegacyApp", "main"]

logger = logging.getLogger("legacy_app")

MAX_LINE = 4096


class LegacyApp:
    """The gsocket side: accepts clients, hands each line to the legacy code."""

    def __init__(self, backend_url: str, delay: float, redis_url: Optional[str] = None) -> None:
        self.delay = delay
        # The audit channel: the legacy code writes to one end with plain
        # (patched) socket calls, gsocket reads the other end's fd.
        self.audit_legacy_end, self.audit_gsocket_end = stdlib_socket.socketpair()
        self.legacy = LegacyClient(backend_url, audit=self.audit_legacy_end, redis_url=redis_url)
        self.calls = 0
        self.listen_id: Optional[int] = None
        self.audit_id: Optional[int] = None
        self.address = ("", 0)

    def start(self, host: str = "127.0.0.1", port: int = 0, backlog: int = 1024) -> int:
        """Listen, adopt the audit socket; returns the listen id once listening."""
        self.audit_id = gsock.bind(self.audit_gsocket_end.fileno())
        skynet.fork(self._read_audit, self.audit_id)
        self.listen_id = gsock.listen(host, port, backlog)
        address = gsock.address(self.listen_id)
        assert address is not None
        self.address = address
        gsock.start(self.listen_id, lambda connection_id, peer: skynet.fork(self._serve, connection_id))
        return self.listen_id

    def stop(self) -> None:
        """Stop listening and close the audit channel (clients are closed by
        skynet.exit, which ends their greenlets)."""
        if self.listen_id is not None:
            gsock.close(self.listen_id)
        if self.audit_id is not None:
            gsock.close(self.audit_id)
        self.audit_legacy_end.close()
        self.audit_gsocket_end.close()

    def _read_audit(self, audit_id: int) -> None:
        while (line := gsock.readline(audit_id)) is not None:
            if line.startswith(b"audit "):
                self.calls += 1

    def _serve(self, connection_id: int) -> None:
        gsock.start(connection_id)
        gsock.limit(connection_id, 64 * MAX_LINE)
        with Connection(connection_id) as connection:
            try:
                while True:
                    line = connection.readline().rstrip(b"\r")
                    if len(line) > MAX_LINE:
                        connection.write(b"error line too long\n")
                        return
                    if line.strip().lower() == b"quit":
                        connection.write(b"ok bye\n")
                        return
                    reply = self.answer(connection_id, line.decode("utf-8", "replace"))
                    if reply is not None:
                        connection.write(reply.encode() + b"\n")
            except ConnectionClosed:
                pass

    def answer(self, connection_id: int, line: str) -> Optional[str]:
        """The reply line to ``line`` (None: already written by a legacy thread)."""
        command, _, argument = line.strip().partition(" ")
        command = command.lower()
        legacy = self.legacy
        try:
            if command == "stats":
                return f"ok calls {self.calls}"
            if command == "shout":
                return "ok " + legacy.shout(argument)
            if command == "raw":
                return "ok " + legacy.raw(argument)
            if command == "nap":
                return "ok " + legacy.nap(self.delay)
            if command == "cache":
                return "ok " + legacy.cached(argument)
            if command == "thread":
                def done(result: Any) -> None:
                    # runs in the legacy thread: gsocket calls from there are fine
                    text = f"error {result}" if isinstance(result, Exception) else f"ok thread: {result}"
                    gsock.write(connection_id, text.encode() + b"\n")
                legacy.in_thread(lambda: legacy.lookup(argument), done).join()
                return None
            word = argument if command == "lookup" else line.strip()
            return "ok " + legacy.lookup(word)
        except Exception as exc:   # noqa: BLE001 - a failed legacy call is an answer too
            logger.info("legacy call for %r failed: %s", line, exc)
            return f"error {type(exc).__name__}: {exc}"


class BackendProcess:
    """The slow legacy backend (examples/legacy_backend.py) as a process of
    its own, as such a service would be: started here, stopped at exit."""

    def __init__(self, host: str, port: int, delay: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("legacy_backend.py")), "--host", host,
             "--port", str(port), "--delay", str(delay)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()        # "listening on HOST:PORT"
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"the legacy backend did not start: {line!r}")
        self.url = "http://" + line.split()[-1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--backend-delay", type=float, default=0.2,
                        help="seconds each backend answer takes (default 0.2)")
    parser.add_argument("--backend-port", type=int, default=0, help="backend port (default: any free one)")
    parser.add_argument("--redis", help="redis://HOST:PORT/DB for the cache command")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    backend = BackendProcess(args.host, args.backend_port, args.backend_delay)
    app = LegacyApp(backend.url, args.backend_delay, args.redis)

    def serve() -> None:
        app.start(args.host, args.port)
        logger.info("legacy_app listening on %s:%d (backend pid %d at %s, delay %.3f s)",
                    app.address[0], app.address[1], backend.process.pid, backend.url,
                    args.backend_delay)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    try:
        skynet.start(serve)
    finally:
        app.stop()
        backend.stop()
    logger.info("legacy_app stopped")


if __name__ == "__main__":
    main()
