"""The slow legacy HTTP backend of examples/legacy_app.py: a stdlib
``ThreadingHTTPServer`` (a thread per request) whose every answer takes
``delay`` seconds of ``time.sleep``, like a slow database or web service.

Written as thread-and-blocking-call code, with nothing of gevent or gsocket
in it: run it after ``gevent.monkey.patch_all()`` and its threads are
greenlets, its sleeps and sockets cooperative.

    GET  /lookup?word=W   ->  200 "W has N letters"
    POST /echo  (body B)  ->  200 B upper-cased
    anything else         ->  404
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Tuple
from urllib.parse import parse_qs, urlsplit

__all__ = ["LegacyBackend"]

logger = logging.getLogger("legacy_backend")


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        if url.path != "/lookup":
            self._answer(404, b"no such page")
            return
        word = parse_qs(url.query).get("word", [""])[0]
        time.sleep(self.server.delay)
        self._answer(200, f"{word} has {len(word)} letters".encode())

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/echo":
            self._answer(404, b"no such page")
            return
        time.sleep(self.server.delay)
        self._answer(200, body.upper())

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024        # many clients at once must not wait in SYN retries
    delay = 0.0


class LegacyBackend:
    """The backend, serving from a thread of its own until ``stop``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.2) -> None:
        self.server = _Server((host, port), _Handler)
        self.server.delay = delay
        self.thread = threading.Thread(target=self.server.serve_forever, name="legacy-backend",
                                       kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def address(self) -> Tuple[str, int]:
        """(host, port) it listens on."""
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.address

    def start(self) -> "LegacyBackend":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; blocks until done."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def main(argv: "list[str] | None" = None) -> None:
    """Run the backend on its own (a separate process, plain OS threads):
    prints ``listening on HOST:PORT`` once it accepts."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    backend = LegacyBackend(args.host, args.port, args.delay)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    backend.start()
    print("listening on %s:%d" % backend.address, flush=True)
    while not stopping.wait(0.5):
        pass
    backend.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
