"""Load on one process: examples/echo.py (the blocking socket API, one
greenlet per connection) driven by the project's C load generator, which
checks every byte that comes back.

* 10,000 connections open at once, all of them doing round trips;
* 50,000 connect / round trip / close cycles, after which the server has
  no more fds than before and its RSS has not grown beyond a small bound.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from _stress import (
    PeakSampler, ServerProcess, fd_count, free_port, loadgen_binary, rss, run_loadgen,
)

pytestmark = [pytest.mark.stress, pytest.mark.gsocket(timeout=150), pytest.mark.timeout(180)]

CONCURRENT = 10_000
CYCLES = 50_000
#: RSS the server may gain over 50,000 cycles, after a warm-up of 5,000.
RSS_SLACK = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loadgen_binary(tmp_path_factory.mktemp("build"))


@pytest.fixture
def echo_server() -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess(["examples/echo.py", "--host", "127.0.0.1", "--port", str(port),
                            "--backlog", "4096"], port, nofile=CONCURRENT * 2)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.lines[-20:]
        assert not server.tracebacks(), server.tracebacks()


def settle_fds(pid: int, expected: int, timeout: float = 10.0) -> int:
    """Wait until ``pid`` has at most ``expected`` fds; the count it has then."""
    deadline = time.monotonic() + timeout
    count = fd_count(pid)
    while count > expected and time.monotonic() < deadline:
        time.sleep(0.05)
        count = fd_count(pid)
    return count


def test_ten_thousand_concurrent_echo_connections(loadgen: Path, echo_server: ServerProcess) -> None:
    baseline = fd_count(echo_server.pid)
    sampler = PeakSampler(echo_server.pid)
    try:
        fields = run_loadgen(loadgen, echo_server.port, "-m", "pingpong", "-c", str(CONCURRENT),
                             "-s", "100", "-t", "2", "-w", "0.2", "-a", "1000",
                             "-P", str(echo_server.pid))
    finally:
        sampler.stop()
    assert "setup took too long" not in fields["stderr"], fields
    assert fields["mismatch"] == "0" and fields["err"] == "0" and fields["conn_err"] == "0", fields
    # all of them were open in the server at once
    assert sampler.max_fds >= baseline + CONCURRENT, sampler.max_fds
    messages = int(fields["msgs"])
    assert messages >= CONCURRENT, fields           # every connection made round trips
    assert int(fields["checked_bytes"]) >= messages * 100
    # and once they are gone, so are their fds
    assert settle_fds(echo_server.pid, baseline) == baseline
    print(f"10k: setup_s={fields['setup_s']} msgs={messages} p99_us={fields['p99_us']} "
          f"peak_fds={sampler.max_fds} peak_rss_mb={sampler.max_rss / 1e6:.0f}")


def test_fifty_thousand_connect_cycles_leave_no_fd_or_memory_behind(
        loadgen: Path, echo_server: ServerProcess) -> None:
    pid = echo_server.pid
    baseline = fd_count(pid)
    warm = run_loadgen(loadgen, echo_server.port, "-m", "connect", "-c", "50", "-s", "100",
                       "-t", "1", "-w", "0")
    assert warm["mismatch"] == "0" and warm["err"] == "0", warm
    assert settle_fds(pid, baseline) == baseline
    rss_before = rss(pid)
    cycles = 0
    while cycles < CYCLES:
        fields = run_loadgen(loadgen, echo_server.port, "-m", "connect", "-c", "50", "-s", "100",
                             "-t", "2", "-w", "0")
        assert fields["mismatch"] == "0" and fields["err"] == "0", fields
        assert int(fields["checked_bytes"]) >= int(fields["msgs"]) * 100
        cycles += int(fields["msgs"])
    assert settle_fds(pid, baseline) == baseline, "fds left behind"
    grown = rss(pid) - rss_before
    assert grown < RSS_SLACK, f"RSS grew {grown / 1e6:.1f} MB over {cycles} cycles"
    print(f"cycles={cycles} rss_growth_mb={grown / 1e6:.1f}")
