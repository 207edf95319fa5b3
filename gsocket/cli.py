"""The ``gsocket`` command: ``chat``, ``echo`` and ``netstat HOST:PORT``.

``gsocket-chat ...`` is ``gsocket chat ...``. Bad options exit with code 2
and one clear line on stderr; SIGTERM / SIGINT stop the servers gracefully
(exit 0). ``gsocket chat --redis`` monkey-patches the process with gevent
before importing redis-py (importing gsocket never patches).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket as stdlib_socket
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence, Tuple

__all__ = ["main", "chat_main"]

logger = logging.getLogger("gsocket.cli")

#: What to install for --redis when redis-py is missing.
REDIS_HINT = "pip install 'gsocket[redis]'"


class UsageError(Exception):
    """A bad option: printed, exit code 2."""


def _address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _chat_parser(prog: str = "gsocket chat") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="A multi-room chat server (line protocol, usable from nc); "
        "standalone by default, scaled out over Redis with --redis.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8888, help="line-protocol port (default 8888)")
    parser.add_argument("--redis", metavar="URL", help="redis://HOST:PORT/DB: share the chat with "
                        "every server on that Redis")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="N processes sharing the port (SO_REUSEPORT; needs --redis)")
    parser.add_argument("--irc", type=_port, metavar="PORT", help="also serve IRC clients: the rooms are "
                        "channels (lobby is #lobby)")
    parser.add_argument("--web", type=_port, metavar="PORT",
                        help="also serve the chat page and its WebSocket "
                        "(http://HOST:PORT/, ws://HOST:PORT/ws)")
    parser.add_argument("--console", type=_address, metavar="HOST:PORT",
                        help="admin console (with --workers N, worker i gets PORT+i)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"])
    # Hidden: for tests and operators who know what they do.
    parser.add_argument("--presence-ttl", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reuseport", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shutdown-grace", type=float, default=3.0, help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _check_chat_options(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1 and not args.redis:
        raise UsageError("--workers needs --redis: the workers share their users and rooms through Redis")
    if args.presence_ttl is not None and args.presence_ttl < 1:
        raise UsageError("--presence-ttl must be at least 1 second")


def _prepare_redis(url: str) -> None:
    """Patch the process for redis-py, then check the URL (UsageError)."""
    from gevent import monkey
    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        import redis  # noqa: F401
    except ImportError:
        raise UsageError(f"--redis needs redis-py: {REDIS_HINT}") from None
    from .chat.redis_bridge import check_url
    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _port_in_use(host: str, port: int) -> Optional[str]:
    if port == 0:
        return None
    family = stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET
    with stdlib_socket.socket(family, stdlib_socket.SOCK_STREAM) as probe:
        probe.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def chat_main(argv: Optional[Sequence[str]] = None, prog: str = "gsocket-chat") -> int:
    """Run the chat server until SIGTERM/SIGINT; returns the exit code."""
    parser = _chat_parser(prog)
    args = parser.parse_args(argv)
    try:
        _check_chat_options(args)
        if args.redis and args.workers > 1:
            _check_url_syntax(args.redis)     # the supervisor needs no redis-py
        elif args.redis:
            _prepare_redis(args.redis)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    if args.workers > 1:
        return _supervise(args, prog)
    return _run_chat(args, prog)


def _check_url_syntax(url: str) -> None:
    """The supervisor's quick look at a Redis URL (the workers check it fully)."""
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad Redis URL {url!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix") or (parts.scheme != "unix" and not parts.hostname):
        raise UsageError(f"bad Redis URL {url!r}: expected redis://HOST:PORT/DB")
    del port


def _run_chat(args: argparse.Namespace, prog: str) -> int:
    import gevent

    from .chat.server import ChatServer

    server = ChatServer(args.host, args.port, redis=args.redis, reuseport=args.reuseport,
                        console=args.console, presence_ttl=args.presence_ttl, web=args.web,
                        irc=args.irc)
    try:
        server.start()
    except OSError as exc:
        where = exc.filename or f"{args.host}:{args.port}"
        print(f"{prog}: error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:      # RedisUnavailable
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2

    def stop() -> None:
        gevent.spawn(server.stop, args.shutdown_grace)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop)
    if args.parent_pid is not None:
        gevent.spawn(_watch_parent, args.parent_pid, stop)
    server.wait()
    return 0


def _watch_parent(parent_pid: int, stop: Callable[[], None]) -> None:
    """A worker whose supervisor died (even by SIGKILL) stops too."""
    import gevent
    while os.getppid() == parent_pid:
        gevent.sleep(0.5)
    logger.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
    stop()


def _worker_argv(args: argparse.Namespace, index: int) -> List[str]:
    argv = [sys.executable, "-m", "gsocket", "chat", "--host", args.host, "--port", str(args.port),
            "--redis", args.redis, "--reuseport", "--log-level", args.log_level,
            "--shutdown-grace", str(args.shutdown_grace), "--parent-pid", str(os.getpid())]
    if args.console is not None:
        argv += ["--console", f"{args.console[0]}:{args.console[1] + index}"]
    if args.web is not None:
        argv += ["--web", str(args.web)]
    if args.irc is not None:
        argv += ["--irc", str(args.irc)]
    if args.presence_ttl is not None:
        argv += ["--presence-ttl", str(args.presence_ttl)]
    return argv


def _supervise(args: argparse.Namespace, prog: str) -> int:
    """Start --workers processes on one port and keep them running; stop
    them all on SIGTERM/SIGINT. Returns the exit code."""
    problem = _port_in_use(args.host, args.port)
    if problem is not None:
        print(f"{prog}: error: cannot listen on {args.host}:{args.port}: {problem}", file=sys.stderr)
        return 2
    stopping: List[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers: List[subprocess.Popen] = []
    started = time.monotonic()
    for index in range(args.workers):
        workers.append(subprocess.Popen(_worker_argv(args, index), stdin=subprocess.DEVNULL))
    logger.info("started %d workers on %s:%d: pids %s", args.workers, args.host, args.port,
                " ".join(str(w.pid) for w in workers))
    code = 0
    while not stopping:
        time.sleep(0.1)
        for index, worker in enumerate(workers):
            status = worker.poll()
            if status is None or stopping:
                continue
            if status == 2 and time.monotonic() - started < 10:
                logger.error("worker %d could not start (exit 2): stopping", index)
                stopping.append(0)
                code = 2
                break
            logger.warning("worker %d (pid %d) exited with %s: restarting it", index, worker.pid, status)
            time.sleep(0.5)
            workers[index] = subprocess.Popen(_worker_argv(args, index), stdin=subprocess.DEVNULL)
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + args.shutdown_grace + 5
    for worker in workers:
        try:
            status = worker.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            status = worker.wait()
        if status not in (0, -signal.SIGTERM) and code == 0:
            code = 1
    logger.info("workers stopped")
    return code


# ---------------------------------------------------------------------- echo and netstat

def echo_main(argv: Optional[Sequence[str]] = None) -> int:
    """An echo server on the socket API until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="gsocket echo", description="Echo every byte back.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8888)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    import gevent

    from . import skynet, socket

    def handle(connection_id: int) -> None:
        socket.start(connection_id)
        while (data := socket.read(connection_id)) is not None:
            socket.write(connection_id, data)
        socket.close(connection_id)

    failure: List[str] = []

    def serve() -> None:
        try:
            listen_id = socket.listen(args.host, args.port, 1024)
        except OSError as exc:
            failure.append(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
            skynet.exit()
            return
        socket.start(listen_id, lambda connection_id, addr: skynet.fork(handle, connection_id))
        host, port = socket.address(listen_id) or (args.host, args.port)
        logger.info("echo listening on %s:%d", host, port)

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, skynet.exit)
    skynet.start(serve)
    if failure:
        print(f"gsocket echo: error: {failure[0]}", file=sys.stderr)
        return 2
    return 0


def netstat_main(argv: Optional[Sequence[str]] = None) -> int:
    """Ask a running console for ``netstat`` (or another command) and print
    the reply: exit 0 on <CMD OK>, 1 on <CMD Error>, 2 if unreachable."""
    parser = argparse.ArgumentParser(prog="gsocket netstat",
                                     description="Print the sockets of a gsocket app's console.")
    parser.add_argument("address", type=_address, metavar="HOST:PORT")
    parser.add_argument("--command", default="netstat", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    host, port = args.address
    try:
        with stdlib_socket.create_connection((host, port), timeout=args.timeout) as conn:
            conn.sendall(args.command.encode() + b"\n")
            reader = conn.makefile("rb")
            for raw in reader:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "<CMD OK>":
                    return 0
                if line == "<CMD Error>":
                    return 1
                print(line)
    except OSError as exc:
        print(f"gsocket netstat: error: cannot ask {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print("gsocket netstat: error: the console closed before answering", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``gsocket COMMAND ...``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"chat": lambda rest: chat_main(rest, prog="gsocket chat"), "echo": echo_main,
                "netstat": netstat_main}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        stream = sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr
        print("usage: gsocket {chat,echo,netstat} ...\n\n"
              "  chat [options]       the chat server (gsocket chat --help)\n"
              "  echo [--port N]      an echo server\n"
              "  netstat HOST:PORT    the sockets of a running app's console", file=stream)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"gsocket: error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])


def chat_entry() -> None:
    """The ``gsocket-chat`` console script."""
    sys.exit(chat_main(prog="gsocket-chat"))


def gsocket_entry() -> None:
    """The ``gsocket`` console script."""
    sys.exit(main())


if __name__ == "__main__":   # pragma: no cover
    os._exit(main())
