"""The gsocket command line: exit code 2 and one clear line for bad options,
the echo and netstat subcommands."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from typing import List

import gevent
import gevent.socket
import pytest
from gevent.subprocess import PIPE, Popen

from chat_helpers import ROOT, free_port


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    process = Popen([sys.executable, "-m", "gsocket", *args], cwd=str(ROOT), stdout=PIPE, stderr=PIPE,
                    stdin=subprocess.DEVNULL)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out.decode(), err.decode())


def test_port_in_use_exits_2() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("chat", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    with socket.socket() as holder:                  # the console's port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        console = holder.getsockname()[1]
        result = run("chat", "--port", str(free_port()), "--console", f"127.0.0.1:{console}")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{console} (console): Address already in use" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers needs --redis"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--redis", "http://127.0.0.1:6379"], "bad Redis URL"),
    (["--redis", "redis://127.0.0.1:notaport/0"], "bad Redis URL"),
    (["--irc", "70000"], "expected a port number"),
    (["--port", "99999"], "expected a port number"),
    (["--console", "nocolon"], "expected HOST:PORT"),
])
def test_bad_options_exit_2(args: List[str], message: str) -> None:
    result = run("chat", *args)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_exits_2() -> None:
    port = free_port()
    result = run("chat", "--port", str(free_port()), "--redis", f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 2
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr


def test_gsocket_command_usage() -> None:
    assert run().returncode == 2
    result = run("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
    result = run("--help")
    assert result.returncode == 0 and "chat" in result.stdout and "netstat HOST:PORT" in result.stdout
    result = run("chat", "--help")
    assert result.returncode == 0 and "--redis" in result.stdout and "--presence-ttl" not in result.stdout


def test_netstat_of_a_running_console_and_unreachable() -> None:
    port, console = free_port(), free_port()
    chat = Popen([sys.executable, "-m", "gsocket", "chat", "--port", str(port),
                  "--console", f"127.0.0.1:{console}"], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=PIPE)
    try:
        assert chat.stderr is not None
        while b"chat listening" not in chat.stderr.readline():
            assert chat.poll() is None
        result = run("netstat", f"127.0.0.1:{console}")
        assert result.returncode == 0, result
        lines = result.stdout.splitlines()
        assert lines[0].split("\t") == ["id", "type", "address", "read", "write", "wbuffer"]
        assert any(f"\tLISTEN\t127.0.0.1:{port}\t" in line for line in lines)
        assert any(f"\tLISTEN\t127.0.0.1:{console}\t" in line for line in lines)
        chat.send_signal(signal.SIGTERM)
        assert chat.wait(10) == 0
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
        if chat.stderr is not None:
            chat.stderr.close()
    result = run("netstat", f"127.0.0.1:{console}")
    assert result.returncode == 2 and "cannot ask" in result.stderr


def test_echo_subcommand() -> None:
    port = free_port()
    echo = Popen([sys.executable, "-m", "gsocket", "echo", "--port", str(port)], cwd=str(ROOT),
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=PIPE)
    try:
        assert echo.stderr is not None
        while b"echo listening" not in echo.stderr.readline():
            assert echo.poll() is None
        with gevent.socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping\n")
            assert client.recv(16) == b"ping\n"
        echo.send_signal(signal.SIGINT)
        assert echo.wait(10) == 0
    finally:
        if echo.poll() is None:
            echo.kill()
            echo.wait()
        if echo.stderr is not None:
            echo.stderr.close()
