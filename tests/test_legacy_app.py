"""examples/legacy_app.py, a monkey-patched legacy code base served by
gsocket, run as a real process with its slow HTTP backend, spoken to over
TCP; the cache command uses a real redis-server through redis-py."""

from __future__ import annotations

import os
import re
import signal
import socket as stdlib_socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import gevent
import gevent.socket
import pytest

from _resp_support import free_port, redis_server_running, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "legacy_app.py"
DELAY = 0.2


class LegacyProcess:
    """``examples/legacy_app.py`` on a free port; its log in a file."""

    def __init__(self, *args: str, launcher: List[str] = ()) -> None:   # type: ignore[assignment]
        self.port = free_port()
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"legacy_app_{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, *launcher, str(APP), "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-delay", str(DELAY), *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process)
        except AssertionError as exc:
            output = self.output()
            self.cleanup()
            raise AssertionError(f"{exc}; its output: {output}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def backend_pid(self) -> int:
        """The backend's pid from the listening line, which the app may log
        just after its port opens: wait up to 5 s for it."""
        deadline = time.monotonic() + 5.0
        while True:
            match = re.search(r"backend pid (\d+) at", self.output())
            if match is not None:
                return int(match.group(1))
            if time.monotonic() > deadline:
                raise AssertionError(f"no backend pid logged: {self.output()}")
            time.sleep(0.02)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def redis_server():
    yield from redis_server_running()


@pytest.fixture(scope="module")
def app(redis_server) -> Iterator[LegacyProcess]:
    example = LegacyProcess("--redis", f"redis://127.0.0.1:{redis_server.port}/0")
    try:
        yield example
    finally:
        stop_process(example.process)
        example.cleanup()


def ask(port: int, *lines: str, timeout: float = 10.0) -> List[str]:
    """Send the lines on one cooperative connection; one reply line each."""
    client = gevent.socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        reader = client.makefile("rb")
        replies = []
        for line in lines:
            client.sendall(line.encode() + b"\n")
            replies.append(reader.readline().decode().rstrip("\n"))
        reader.close()
        return replies
    finally:
        client.close()


def stats(port: int) -> int:
    reply = ask(port, "stats")[0]
    assert reply.startswith("ok calls "), reply
    return int(reply.split()[-1])


def wait_for_calls(port: int, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while stats(port) < count:
        assert time.monotonic() < deadline, f"audit count stuck at {stats(port)}, wanted {count}"
        gevent.sleep(0.02)


def test_every_legacy_call_answers_one_line(app):
    before = stats(app.port)
    assert ask(app.port, "lookup hello", "shout hi there", "raw abc", "nap", "thread deep", "just words",
               "cache k1", "cache k1", "lookup ") == [
        "ok hello has 5 letters", "ok HI THERE", "ok abc has 3 letters", "ok slept 200 ms",
        "ok thread: deep has 4 letters", "ok just words has 10 letters", "ok miss: k1 has 2 letters",
        "ok hit: k1 has 2 letters", "ok  has 0 letters"]
    # the legacy code's audit lines reach gsocket through the socket it adopted
    # with socket.bind(fd): 9 calls, the cache miss made two (cache + lookup)
    wait_for_calls(app.port, before + 10)
    assert stats(app.port) == before + 10
    # patched threads are greenlets: gsocket has no reason to warn about threads
    gsocket_lines = [line for line in app.output().splitlines()
                     if len(line.split()) > 3 and line.split()[2].startswith("gsocket")]
    assert not [line for line in gsocket_lines if "thread" in line.lower()], gsocket_lines


def test_quit_and_a_bad_line(app):
    client = gevent.socket.create_connection(("127.0.0.1", app.port), timeout=10)
    try:
        reader = client.makefile("rb")
        client.sendall(b"\xff\xfe lookup\r\nquit\n")
        assert reader.readline() == "ok \ufffd\ufffd lookup has 9 letters\n".encode()
        assert reader.readline() == b"ok bye\n"
        assert reader.readline() == b""
        reader.close()
    finally:
        client.close()
    client = gevent.socket.create_connection(("127.0.0.1", app.port), timeout=10)
    try:
        client.sendall(b"x" * 5000 + b"\n")
        assert client.makefile("rb").readline() == b"error line too long\n"
    finally:
        client.close()


@pytest.mark.parametrize("command", ["lookup", "raw", "thread"])
def test_100_clients_with_a_200_ms_call_each_are_served_together(app, command):
    def one(index: int) -> str:
        return ask(app.port, f"{command} w{index}", timeout=20)[0]

    warm = [gevent.spawn(one, index) for index in range(10)]
    gevent.joinall(warm, raise_error=True)
    started = time.monotonic()
    jobs = [gevent.spawn(one, index) for index in range(100)]
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.monotonic() - started
    prefix = "ok thread: " if command == "thread" else "ok "
    assert [job.value for job in jobs] == [f"{prefix}w{index} has {len(str(index)) + 1} letters"
                                           for index in range(100)]
    assert DELAY <= elapsed < 5 * DELAY, f"100 clients took {elapsed:.3f} s"


def test_runs_under_gevents_launcher_and_stops_cleanly():
    example = LegacyProcess(launcher=["-m", "gevent.monkey"])
    try:
        assert ask(example.port, "shout launcher", "cache x") == [
            "ok LAUNCHER", "error RuntimeError: no Redis configured (--redis URL)"]
        backend = example.backend_pid()
        idle = stdlib_socket.create_connection(("127.0.0.1", example.port), timeout=10)
        assert stop_process(example.process) == 0
        assert idle.recv(10) == b""
        idle.close()
        output = example.output()
        assert "legacy_app stopped" in output and "Traceback" not in output
        with pytest.raises(ProcessLookupError):       # the backend process went too
            for _ in range(100):
                os.kill(backend, 0)
                time.sleep(0.05)
    finally:
        example.cleanup()


def test_sigint_stops_it():
    example = LegacyProcess()
    try:
        assert ask(example.port, "nap") == ["ok slept 200 ms"]
        example.process.send_signal(signal.SIGINT)
        assert example.process.wait(15) == 0
    finally:
        example.cleanup()


def test_a_backend_that_is_gone_is_an_error_line_not_a_crash():
    example = LegacyProcess()
    try:
        os.kill(example.backend_pid(), signal.SIGKILL)
        time.sleep(0.2)
        replies = ask(example.port, "lookup x", "shout y", "raw z", "nap")
        assert [reply.split(":")[0] for reply in replies[:3]] == [
            "error URLError", "error ConnectionRefusedError", "error ConnectionRefusedError"]
        assert replies[3] == "ok slept 200 ms"
    finally:
        stop_process(example.process)
        example.cleanup()
