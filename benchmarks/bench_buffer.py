"""Benchmarks for gsocket.buffer.ReadBuffer: cost must grow linearly.

Two workloads, each at two sizes ten times apart; the time per byte should
stay about the same when the size grows tenfold (a quadratic buffer would
get ten times slower per byte):

* readline: one long line arriving in 1 KiB chunks, ``readline(b"\\r\\n")``
  attempted after every push (what gsocket.socket does for a waiting
  reader); 5 MiB and 50 MiB.
* pop(1): a buffer filled in 1 KiB chunks, drained one byte at a time;
  100 000 and 1 000 000 pops.

Plus one small-message case (push one 64-byte chunk, pop it whole) and, in
the standalone table, a baseline: only ``bytearray += chunk`` for the same
line sizes, the part of the cost that no buffer design can avoid (a 50 MiB
array no longer fits in the CPU caches, so every byte costs more there).

Run with pytest-benchmark (not part of the normal test run, which only
collects ``tests/``)::

    python -m pytest benchmarks/bench_buffer.py --benchmark-only -p no:cacheprovider

or standalone, printing a table of ns/byte::

    python benchmarks/bench_buffer.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

if __name__ == "__main__":  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsocket.buffer import ReadBuffer

MiB = 1024 * 1024
CHUNK = 1024
SEP = b"\r\n"
LINE_SIZES = (5 * MiB, 50 * MiB)
POP_COUNTS = (100_000, 1_000_000)
SMALL_MESSAGE = b"m" * 64
SMALL_REPEAT = 100_000


def line_chunks(size: int) -> list[bytes]:
    """One line of ``size`` bytes (separator included) in 1 KiB chunks."""
    body = b"x" * CHUNK
    last = b"x" * (CHUNK - len(SEP)) + SEP
    return [body] * (size // CHUNK - 1) + [last]


def readline_trickle(chunks: list[bytes]) -> int:
    """Push each chunk and try readline after each; return the line length."""
    buf = ReadBuffer()
    push = buf.push
    readline = buf.readline
    line = None
    for chunk in chunks:
        push(chunk)
        line = readline(SEP)
    assert line is not None and not buf
    return len(line)


def filled_buffer(size: int) -> ReadBuffer:
    """A buffer holding ``size`` bytes, pushed in 1 KiB chunks."""
    buf = ReadBuffer()
    chunk = b"y" * CHUNK
    for _ in range(size // CHUNK):
        buf.push(chunk)
    buf.push(b"y" * (size % CHUNK))
    return buf


def pop_ones(buf: ReadBuffer) -> None:
    """Drain ``buf`` with pop(1)."""
    pop = buf.pop
    for _ in range(len(buf)):
        pop(1)
    assert not buf


def append_only(chunks: list[bytes]) -> int:
    """Baseline: just append the chunks to one bytearray."""
    arr = bytearray()
    for chunk in chunks:
        arr += chunk
    return len(arr)


def small_messages(repeat: int = SMALL_REPEAT) -> None:
    """Push one small chunk and pop it whole, ``repeat`` times."""
    buf = ReadBuffer()
    n = len(SMALL_MESSAGE)
    for _ in range(repeat):
        buf.push(SMALL_MESSAGE)
        buf.pop(n)


# -- pytest-benchmark --------------------------------------------------------

try:
    import pytest
except ImportError:  # standalone use needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    _results: dict[str, tuple[int, float]] = {}

    class _PerByteSummary:
        """Adds ns per byte (fastest round) to pytest's final summary."""

        def pytest_terminal_summary(self, terminalreporter: Any) -> None:
            if not _results:
                return
            terminalreporter.section("ReadBuffer: ns per byte (fastest round)")
            for name, (nbytes, seconds) in _results.items():
                per_byte = seconds * 1e9 / nbytes
                terminalreporter.write_line(
                    f"{name:<22} {nbytes:>12,} B {per_byte:8.2f} ns/B"
                )

    @pytest.fixture(scope="module", autouse=True)
    def _per_byte_summary(request: pytest.FixtureRequest) -> None:
        manager = request.config.pluginmanager
        if not manager.has_plugin("gsocket-bench-buffer"):
            manager.register(_PerByteSummary(), "gsocket-bench-buffer")

    def _record(name: str, nbytes: int, benchmark: Any) -> None:
        benchmark.extra_info["bytes"] = nbytes
        stats = getattr(benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable
            _results[name] = (nbytes, stats.stats.min)

    @pytest.mark.parametrize("size", LINE_SIZES, ids=lambda s: f"{s // MiB}MiB")
    def test_readline_trickle(benchmark: Any, size: int) -> None:
        chunks = line_chunks(size)
        length = benchmark.pedantic(
            readline_trickle, args=(chunks,), rounds=5, iterations=1
        )
        assert length == size - len(SEP)
        _record(f"readline {size // MiB} MiB", size, benchmark)

    @pytest.mark.parametrize("count", POP_COUNTS, ids=str)
    def test_pop_one_byte(benchmark: Any, count: int) -> None:
        def setup() -> tuple[tuple[ReadBuffer], dict[str, Any]]:
            return (filled_buffer(count),), {}

        benchmark.pedantic(pop_ones, setup=setup, rounds=5, iterations=1)
        _record(f"pop(1) x {count:,}", count, benchmark)

    def test_small_message_push_pop(benchmark: Any) -> None:
        benchmark.pedantic(small_messages, rounds=5, iterations=1)
        _record("push+pop 64 B", SMALL_REPEAT * len(SMALL_MESSAGE), benchmark)


# -- standalone ----------------------------------------------------------------


def _best(
    fn: Callable[[], object], setup: Callable[[], None] | None = None, rounds: int = 5
) -> float:
    """Fastest of ``rounds`` timings of ``fn`` (``setup`` untimed)."""
    best = float("inf")
    for _ in range(rounds):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    rows: list[tuple[str, int, float]] = []
    pairs: list[tuple[int, int]] = []

    for label, fn in (("readline", readline_trickle), ("baseline +=", append_only)):
        first = len(rows)
        for size in LINE_SIZES:
            t = _best(lambda chunks=line_chunks(size): fn(chunks))
            rows.append((f"{label}: {size // MiB} MiB line, 1 KiB chunks", size, t))
        pairs.append((first, first + 1))

    holder: list[ReadBuffer] = []
    first = len(rows)
    for count in POP_COUNTS:

        def setup(count: int = count) -> None:
            holder[:] = [filled_buffer(count)]

        t = _best(lambda: pop_ones(holder[0]), setup)
        rows.append((f"pop(1) x {count:,}", count, t))
    pairs.append((first, first + 1))

    t = _best(small_messages)
    nbytes = SMALL_REPEAT * len(SMALL_MESSAGE)
    rows.append((f"push+pop 64 B x {SMALL_REPEAT:,}", nbytes, t))

    print(f"ReadBuffer, Python {sys.version.split()[0]}, fastest of 5 rounds")
    print(f"{'workload':<40} {'bytes':>12} {'seconds':>8} {'ns/byte':>8}")
    for name, nbytes, seconds in rows:
        per_byte = seconds * 1e9 / nbytes
        print(f"{name:<40} {nbytes:>12,} {seconds:>8.3f} {per_byte:>8.2f}")
    print()
    print("ns/byte at 10x the size, relative to 1x (1.0 = linear, 10 = quadratic):")
    for a, b in pairs:
        (name_a, bytes_a, t_a), (_, bytes_b, t_b) = rows[a], rows[b]
        ratio = (t_b / bytes_b) / (t_a / bytes_a)
        print(f"  {name_a.split(':')[0].split(' x ')[0]:<14} {ratio:5.2f}x")


if __name__ == "__main__":
    main()
