"""The chat server as a user runs it: the real CLI in a subprocess, stopped
with SIGTERM/SIGINT, and driven with the real ``nc`` binary."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Iterator, List

import gevent
import pytest
from gevent.subprocess import PIPE, Popen

from chat_helpers import ChatClient, ChatProcess
from gsocket.chat.server import SHUTDOWN_NOTICE, ChatServer


@pytest.fixture
def processes() -> Iterator:
    started: List[ChatProcess] = []

    def start(*args: str, **options) -> ChatProcess:
        process = ChatProcess(*args, **options)
        started.append(process)
        return process.started()

    yield start
    for process in started:
        process.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_every_client_gets_the_notice_then_eof(processes, signum) -> None:
    chat = processes()
    assert any("chat listening on 127.0.0.1:%d" % chat.port in line for line in chat.lines)
    clients = [chat.client() for _ in range(30)]
    try:
        for client in clients:
            client.greeting()
        talker = clients[0]
        talker.send(*[f"queued {n}" for n in range(30)])
        assert clients[1].expect("[lobby] guest1: queued 29")
        started = time.monotonic()
        chat.signal(signum)
        for client in clients:
            rest = client.until_eof(timeout=10)
            assert rest and rest[-1] == f"* {SHUTDOWN_NOTICE}", rest[-3:]
            assert sum(1 for line in rest if SHUTDOWN_NOTICE in line) == 1
        assert chat.wait(10) == 0
        assert time.monotonic() - started < 5
        assert any("chat stopped" in line for line in chat.lines)
    finally:
        for client in clients:
            client.close()


def test_one_log_line_per_connect_and_disconnect(processes) -> None:
    chat = processes()
    client = chat.client()
    client.greeting()
    chat.wait_for_log("connected as guest1")
    client.send("/nick alice", "/quit")
    client.until_eof()
    line = chat.wait_for_log("(alice) disconnected: quit")
    assert "line 127.0.0.1:" in line
    chat.signal(signal.SIGTERM)
    assert chat.wait() == 0


def test_example_runs_the_chat(processes) -> None:
    from chat_helpers import ROOT, free_port
    port = free_port()
    example = Popen([sys.executable, str(ROOT / "examples" / "chat.py"), "--port", str(port)],
                    cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=PIPE)
    try:
        assert example.stderr is not None
        while b"chat listening on 127.0.0.1:%d" % port not in example.stderr.readline():
            assert example.poll() is None
        client = ChatClient(port)
        assert "guest1" in client.greeting()
        example.send_signal(signal.SIGTERM)
        assert client.until_eof() == [f"* {SHUTDOWN_NOTICE}"]
        client.close()
        assert example.wait(10) == 0
    finally:
        if example.poll() is None:
            example.kill()
            example.wait()
        if example.stderr is not None:
            example.stderr.close()


def test_nc_clients_talk(driver) -> None:
    """Two real nc processes against the server: one talks, one listens."""
    server = ChatServer("127.0.0.1", 0)
    port = server.start()
    listener = Popen(["nc", "-q", "1", "127.0.0.1", str(port)], stdin=PIPE, stdout=PIPE)
    talker = None
    try:
        assert listener.stdin is not None and listener.stdout is not None
        listener.stdin.write(b"/nick listener\r\n")
        listener.stdin.flush()
        assert b"welcome guest1" in listener.stdout.readline()
        assert listener.stdout.readline() == b"* guest1 is now known as listener\n"
        talker = Popen(["nc", "-q", "1", "127.0.0.1", str(port)], stdin=PIPE, stdout=PIPE)
        assert talker.stdin is not None and talker.stdout is not None
        assert b"welcome guest2" in talker.stdout.readline()
        talker.stdin.write(b"/nick talker\nhello from nc\n/me waves\n/msg listener psst\n/who\n")
        talker.stdin.flush()
        expected = [b"* guest2 joined lobby\n", b"* guest2 is now known as talker\n",
                    b"[lobby] talker: hello from nc\n", b"[lobby] * talker waves\n",
                    b"[pm] talker: psst\n"]
        assert [listener.stdout.readline() for _ in expected] == expected
        assert talker.stdout.readline() == b"* guest2 is now known as talker\n"
        assert talker.stdout.readline() == b"* lobby (2): listener, talker\n"
        talker.stdin.write(b"/quit\n")
        talker.stdin.flush()
        assert talker.stdout.readline() == b"* bye\n"
        talker.stdin.close()          # nc (OpenBSD) ends once both directions are done
        assert talker.stdout.read() == b""                 # the server closed: nc sees EOF
        assert listener.stdout.readline() == b"* talker left lobby (quit)\n"
        server.stop(grace=2)
        listener.stdin.close()
        assert listener.stdout.read() == f"* {SHUTDOWN_NOTICE}\n".encode()
        assert talker.wait(10) == 0 and listener.wait(10) == 0
    finally:
        for process in (listener, talker):
            if process is None:
                continue
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()
        server.stop(grace=1)
        gevent.sleep(0)
