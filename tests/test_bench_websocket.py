"""benchmarks/bench_websocket.py runs end to end with tiny counts (every
server, every case, a ratio per row), and its load catches a server that
echoes the wrong bytes. No speed is asserted: figures belong to the
benchmark itself."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import gevent
import gevent.server
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks package is not installed, only the checkout has it
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_websocket  # noqa: E402

pytestmark = pytest.mark.gsocket(timeout=60)

SERVERS = ("websockets", "gsocket", "gsocket_read")


def test_tiny_run_reports_every_server_and_case(tmp_path: Path) -> None:
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_websocket", "--rounds", "1", "--seconds", "0.2",
         "--warmup", "0.05", "--connections", "2", "--servers", ",".join(SERVERS), "--logs", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=50)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = re.findall(r"^\| (\w+) \| (\w+) \| ([\d,]+) \| ([\d.]+) \| ([\d,]+) \| ([\d.]+|n/a) "
                      r"\| (\d+) \| (\d+) \|$", completed.stdout, re.MULTILINE)
    assert {(case, server) for case, server, *_ in rows} == {
        (case, server) for case in bench_websocket.CASES for server in SERVERS}, completed.stdout
    for case, server, rate, ratio, _, cpu_ratio, _, _ in rows:
        assert int(rate.replace(",", "")) > 0, (case, server)
        if server == bench_websocket.REFERENCE:
            assert ratio == "1.00" and cpu_ratio in ("1.00", "n/a")   # n/a: 0 CPU ticks seen
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}-round1.log" for s in SERVERS)


def test_frames_match_the_rfc_examples() -> None:
    # RFC 6455 section 5.7: "Hello", unmasked and masked with 37 fa 21 3d.
    assert bench_websocket.server_frame(b"Hello", "text") == bytes.fromhex("810548656c6c6f")
    saved = bench_websocket.MASK
    try:
        bench_websocket.MASK = bytes.fromhex("37fa213d")
        assert bench_websocket.client_frame(b"Hello", "text") == bytes.fromhex("818537fa213d7f9f4d5158")
    finally:
        bench_websocket.MASK = saved
    assert bench_websocket.server_frame(bytes(65536), "binary")[:10] == bytes.fromhex("827f0000000000010000")


def test_load_fails_a_wrong_echo() -> None:
    """A server that upgrades properly but echoes the client's masked bytes
    as they came (not what an echo must frame) fails the case."""
    def bogus(sock, address) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        key = re.search(rb"Sec-WebSocket-Key: (\S+)", head).group(1)
        accept = base64.b64encode(hashlib.sha1(key + bench_websocket.GUID.encode()).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)                       # still masked: not an echo's frame
    server = gevent.server.StreamServer(("127.0.0.1", 0), bogus)
    server.start()
    try:
        case = bench_websocket.Case("t", 2, 1, 64, "text", "")
        load = bench_websocket.Load(server.server_port, case)
        with gevent.Timeout(10):
            while len(load.errors) < 2:
                gevent.sleep(0.01)
        load.close()
        assert load.errors == ["AssertionError: the echo differs from what was sent"] * 2
    finally:
        server.stop()
