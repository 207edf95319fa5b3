"""Out of file descriptors on accept (EMFILE), in a subprocess whose
RLIMIT_NOFILE is lowered: the listener reports ERROR "Too many open files",
the pending client is dropped, the server does not spin, keeps serving the
connections it has, and accepts again once fds are freed.

The parent side uses plain blocking stdlib sockets with timeouts (no
gsocket runs in this process for this test)."""

from __future__ import annotations

import os
import queue
import socket as stdlib_socket
import subprocess
import sys
import threading
import time
from typing import List, Optional


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The echo server run in the child. It binds its stdin (closing stdin stops
#: it) and prints one line per interesting event.
CHILD = r"""
import os, resource, sys
from gsocket.server import SocketServer
from gsocket.events import (SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR,
                            SOCKET_OPEN)

FREE = int(sys.argv[1])
srv = SocketServer()
listen_id = srv.listen("127.0.0.1", 0, backlog=128)
port = srv.address(listen_id)[1]
stdin_id = srv.bind(0)
srv.start(listen_id)
highest = max(int(name) for name in os.listdir("/proc/self/fd"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
limit = highest + 1 + FREE
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
print("READY", port, listen_id, limit, flush=True)
while True:
    msg = srv.poll()
    if msg.type == SOCKET_ACCEPT:
        srv.start(msg.ud)
        print("ACCEPT", msg.ud, flush=True)
    elif msg.type == SOCKET_DATA and msg.id != stdin_id:
        srv.send(msg.id, msg.data)
    elif msg.type == SOCKET_CLOSE:
        if msg.id == stdin_id:
            break
        srv.close(msg.id)
        print("CLOSED", msg.id, flush=True)
    elif msg.type == SOCKET_ERROR:
        print("ERROR", msg.id, msg.data, flush=True)
srv.release()
print("BYE", flush=True)
"""

#: fds the child may open beyond those it has after setup.
FREE_FDS = 12


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Lines:
    """Reads the child's stdout in a thread; get() waits with a timeout."""

    def __init__(self, stream) -> None:
        self.queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.all: List[str] = []
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def get(self, timeout: float = 10.0) -> Optional[str]:
        line = self.queue.get(timeout=timeout)
        if line is not None:
            self.all.append(line)
        return line

    def drain(self) -> List[str]:
        out = []
        while True:
            try:
                line = self.queue.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                self.queue.put(None)
                return out
            self.all.append(line)
            out.append(line)

    def wait_for(self, prefix: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {prefix!r} line; child said: {self.all[-10:]}"
            try:
                line = self.get(remaining)
            except queue.Empty:
                continue
            assert line is not None, f"child exited early; it said: {self.all[-10:]}"
            if line.startswith(prefix):
                return line


def echo_client(port: int, token: bytes) -> Optional[stdlib_socket.socket]:
    """Connect and round-trip ``token``; the socket, or None when the server
    dropped the connection."""
    sock = stdlib_socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(token)
        got = b""
        while len(got) < len(token):
            chunk = sock.recv(len(token) - len(got))
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    except stdlib_socket.timeout:
        sock.close()
        raise AssertionError("the server neither served nor dropped a client within 5 s")
    except BaseException:
        sock.close()
        raise
    if got == token:
        return sock
    assert got == b"", f"garbled echo {got!r}"
    sock.close()
    return None


def test_accept_out_of_fds_drops_client_reports_error_and_recovers(leak_check):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(FREE_FDS)], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(child.stdout)
    held: List[stdlib_socket.socket] = []
    try:
        ready = lines.wait_for("READY", timeout=20).split()
        port, listen_id = int(ready[1]), int(ready[2])

        # 1. fill the fd table: every client is echoed until one is dropped
        dropped_at = None
        for i in range(FREE_FDS + 5):
            sock = echo_client(port, b"hello %d" % i)
            if sock is None:
                dropped_at = i
                break
            held.append(sock)
        assert dropped_at is not None, "the server never ran out of fds"
        assert len(held) >= FREE_FDS - 3
        error = lines.wait_for("ERROR")
        assert error == f"ERROR {listen_id} Too many open files"

        # 2. while clients keep knocking, the server must not spin
        before = cpu_seconds(child.pid)
        start = time.monotonic()
        attempts = 0
        while time.monotonic() - start < 1.0:
            sock = echo_client(port, b"knock")
            assert sock is None, "accepted although out of fds"
            attempts += 1
            time.sleep(0.02)
        used = cpu_seconds(child.pid) - before
        assert used < 0.5, f"server used {used:.2f} s CPU in 1 s while out of fds"
        assert attempts >= 10
        # each knock was refused with an ERROR on the listener
        errors = [line for line in lines.drain() if line.startswith("ERROR")]
        assert errors and set(errors) == {f"ERROR {listen_id} Too many open files"}
        # the connections it already has are still served
        held[0].sendall(b"still here")
        assert held[0].recv(100) == b"still here"

        # 3. free some fds: the server accepts again
        for sock in held[-3:]:
            sock.close()
        del held[-3:]
        for _ in range(3):
            lines.wait_for("CLOSED")
        again = echo_client(port, b"back in business")
        assert again is not None
        held.append(again)

        # 4. clean stop: closing stdin is a CLOSE on the bound fd
        child.stdin.close()
        assert child.wait(timeout=15) == 0, child.stderr.read()
        lines.wait_for("BYE")
    finally:
        for sock in held:
            sock.close()
        if child.poll() is None:
            child.kill()
            child.wait(5)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream and not stream.closed:
                stream.close()
        lines.thread.join(5)
