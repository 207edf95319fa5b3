"""Benchmarks for gsocket.netpack.Decoder: cost must grow linearly.

Each workload runs at two sizes ten times apart; the time per byte should
stay about the same when the size grows tenfold (a decoder that copied its
buffer per packet, or per byte, would get ten times slower per byte):

* small packets in one chunk: 100 000 and 1 000 000 packets of 16 bytes,
  handed to ``feed`` as one chunk;
* small packets in 4 KiB chunks: the same streams cut in 4 KiB chunks
  (packets split across chunk boundaries, as TCP delivers them);
* one packet byte by byte: a 6 KiB and a 60 KiB packet, fed one byte per
  ``feed`` call (the worst case for a buffer that re-joins on every feed);
  and, with a 4-byte header, 60 KiB and 600 KiB.

Run with pytest-benchmark (not part of the normal test run, which only
collects ``tests/``)::

    python -m pytest benchmarks/bench_netpack.py --benchmark-only -p no:cacheprovider

or standalone, printing a table of ns/byte and the 10x ratios::

    python benchmarks/bench_netpack.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

if __name__ == "__main__":  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsocket.netpack import Decoder, pack

SMALL_PAYLOAD = b"p" * 16
SMALL_COUNTS = (100_000, 1_000_000)
CHUNK = 4096
BYTEWISE_SIZES = (6 * 1024, 60 * 1024)
BYTEWISE_SIZES_4 = (60 * 1024, 600 * 1024)


def small_stream(count: int) -> bytes:
    """``count`` packets of 16 bytes, framed."""
    return pack(SMALL_PAYLOAD) * count


def chunked(data: bytes, size: int = CHUNK) -> List[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def bytewise(size: int, header: int = 2) -> List[bytes]:
    """One packet of ``size`` payload bytes as a list of 1-byte chunks."""
    wire = pack(b"b" * size, header)
    return [wire[i:i + 1] for i in range(len(wire))]


def decode(chunks: List[bytes], header: int = 2, max_packet: int | None = None) -> int:
    """Feed every chunk to a fresh decoder; return the number of packets."""
    decoder = Decoder(header, max_packet)
    feed = decoder.feed
    count = 0
    for chunk in chunks:
        count += len(feed(chunk))
    assert decoder.pending_bytes == 0
    return count


#: (label, chunks, header, max_packet, expected packets)
Workload = Tuple[str, List[bytes], int, Any, int]


def workloads() -> List[Tuple[Workload, Workload]]:
    """Pairs of workloads, the second ten times the first."""
    pairs: List[Tuple[Workload, Workload]] = []
    one, ten = (
        (f"{n:,} x 16 B, one chunk", [small_stream(n)], 2, None, n) for n in SMALL_COUNTS)
    pairs.append((one, ten))
    one, ten = (
        (f"{n:,} x 16 B, 4 KiB chunks", chunked(small_stream(n)), 2, None, n) for n in SMALL_COUNTS)
    pairs.append((one, ten))
    one, ten = (
        (f"{s // 1024} KiB packet, 1 B feeds", bytewise(s), 2, None, 1) for s in BYTEWISE_SIZES)
    pairs.append((one, ten))
    one, ten = (
        (f"{s // 1024} KiB packet, 1 B feeds, header=4", bytewise(s, 4), 4, None, 1)
        for s in BYTEWISE_SIZES_4)
    pairs.append((one, ten))
    return pairs


def nbytes(chunks: List[bytes]) -> int:
    return sum(len(c) for c in chunks)


# -- pytest-benchmark --------------------------------------------------------

try:
    import pytest
except ImportError:  # standalone use needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    _WORKLOADS = [w for pair in workloads() for w in pair]
    _results: dict[str, tuple[int, float]] = {}

    class _PerByteSummary:
        """Adds ns per byte (fastest round) to pytest's final summary."""

        def pytest_terminal_summary(self, terminalreporter: Any) -> None:
            if not _results:
                return
            terminalreporter.section("netpack.Decoder: ns per byte (fastest round)")
            for name, (size, seconds) in _results.items():
                terminalreporter.write_line(f"{name:<40} {size:>12,} B {seconds * 1e9 / size:8.2f} ns/B")

    @pytest.fixture(scope="module", autouse=True)
    def _per_byte_summary(request: pytest.FixtureRequest) -> None:
        manager = request.config.pluginmanager
        if not manager.has_plugin("gsocket-bench-netpack"):
            manager.register(_PerByteSummary(), "gsocket-bench-netpack")

    @pytest.mark.parametrize("workload", _WORKLOADS, ids=[w[0] for w in _WORKLOADS])
    def test_decode(benchmark: Any, workload: Workload) -> None:
        label, chunks, header, max_packet, expected = workload
        count = benchmark.pedantic(decode, args=(chunks, header, max_packet), rounds=3, iterations=1)
        assert count == expected
        size = nbytes(chunks)
        benchmark.extra_info["bytes"] = size
        stats = getattr(benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable
            _results[label] = (size, stats.stats.min)


# -- standalone ----------------------------------------------------------------


def _best(fn: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    print(f"netpack.Decoder, Python {sys.version.split()[0]}, fastest of 3 rounds")
    print(f"{'workload':<42} {'bytes':>11} {'seconds':>8} {'ns/byte':>8}")
    ratios = []
    for pair in workloads():
        per_byte = []
        for label, chunks, header, max_packet, expected in pair:
            assert decode(chunks, header, max_packet) == expected
            seconds = _best(lambda: decode(chunks, header, max_packet))
            size = nbytes(chunks)
            per_byte.append(seconds / size)
            print(f"{label:<42} {size:>11,} {seconds:>8.3f} {seconds * 1e9 / size:>8.2f}")
        ratios.append((pair[0][0], per_byte[1] / per_byte[0]))
    print()
    print("ns/byte at 10x the size, relative to 1x (1.0 = linear, 10 = quadratic):")
    for label, ratio in ratios:
        print(f"  {label:<42} {ratio:5.2f}x")


if __name__ == "__main__":
    main()
