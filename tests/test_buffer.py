"""Tests for gsocket.buffer.ReadBuffer (sans-I/O, no sockets).

Unit cases, byte-at-a-time feeding, and hypothesis properties comparing
the buffer with a plain-bytes reference model under arbitrary chunkings.
"""

from __future__ import annotations

import array
import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gsocket.buffer import ReadBuffer


class Model:
    """Trivially correct reference: the buffered stream as one bytes."""

    def __init__(self) -> None:
        self.data = b""

    def push(self, chunk: bytes) -> int:
        self.data += bytes(chunk)
        return len(self.data)

    def pop(self, n: int) -> bytes | None:
        if n > len(self.data):
            return None
        out, self.data = self.data[:n], self.data[n:]
        return out

    def readline(self, sep: bytes) -> bytes | None:
        i = self.data.find(sep)
        if i < 0:
            return None
        out, self.data = self.data[:i], self.data[i + len(sep) :]
        return out

    def has_line(self, sep: bytes) -> bool:
        return sep in self.data

    def readall(self) -> bytes:
        out, self.data = self.data, b""
        return out

    @property
    def size(self) -> int:
        return len(self.data)


class SmallCompact(ReadBuffer):
    """Compacts almost at once, so the compaction path gets exercised."""

    __slots__ = ()
    COMPACT_THRESHOLD = 4


def run_op(target: ReadBuffer | Model, op: tuple) -> object:
    name, *args = op
    if name == "size":
        return target.size
    return getattr(target, name)(*args)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


# -- unit cases ------------------------------------------------------------


def test_empty_buffer():
    buf = ReadBuffer()
    assert buf.size == 0
    assert len(buf) == 0
    assert not buf
    assert buf.pop(1) is None
    assert buf.pop(0) == b""
    assert buf.readline() is None
    assert not buf.has_line()
    assert buf.readall() == b""
    assert type(buf.readall()) is bytes


def test_push_returns_total_size_and_empty_push_is_noop():
    buf = ReadBuffer()
    assert buf.push(b"abc") == 3
    assert buf.push(b"") == 3
    assert buf.push(b"de") == 5
    assert buf.size == 5 and len(buf) == 5 and buf
    assert buf.readall() == b"abcde"
    assert buf.push(b"") == 0
    assert not buf


def test_pop_across_chunks():
    buf = ReadBuffer()
    for chunk in (b"ab", b"cd", b"ef", b"g"):
        buf.push(chunk)
    assert buf.pop(3) == b"abc"
    assert buf.size == 4
    assert buf.pop(3) == b"def"
    assert buf.pop(2) is None  # not enough: nothing consumed
    assert buf.size == 1
    assert buf.pop(1) == b"g"
    assert buf.size == 0


def test_pop_zero_returns_empty_bytes_and_consumes_nothing():
    buf = ReadBuffer()
    buf.push(b"xyz")
    assert buf.pop(0) == b""
    assert buf.size == 3
    assert buf.pop(3) == b"xyz"


def test_pop_too_many_keeps_everything():
    buf = ReadBuffer()
    buf.push(b"12")
    buf.push(b"34")
    assert buf.pop(5) is None
    assert buf.readall() == b"1234"


def test_pop_after_more_data_arrives():
    buf = ReadBuffer()
    buf.push(b"he")
    assert buf.pop(5) is None
    buf.push(b"llo world")
    assert buf.pop(5) == b"hello"
    assert buf.readall() == b" world"


def test_pop_errors():
    buf = ReadBuffer()
    buf.push(b"abc")
    with pytest.raises(ValueError):
        buf.pop(-1)
    with pytest.raises(TypeError):
        buf.pop(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.pop("1")  # type: ignore[arg-type]
    assert buf.size == 3


def test_readline_crlf_split_across_pushes():
    buf = ReadBuffer()
    buf.push(b"ab\r")
    assert buf.readline(b"\r\n") is None
    assert not buf.has_line(b"\r\n")
    buf.push(b"\ncd")
    assert buf.has_line(b"\r\n")
    assert buf.readline(b"\r\n") == b"ab"
    assert buf.readline(b"\r\n") is None
    assert buf.readall() == b"cd"


def test_readline_default_sep_and_consecutive_lines():
    buf = ReadBuffer()
    buf.push(b"one\ntwo\n\nthree")
    assert buf.readline() == b"one"
    assert buf.readline() == b"two"
    assert buf.readline() == b""
    assert buf.readline() is None
    assert buf.size == 5
    buf.push(b"\n")
    assert buf.readline() == b"three"
    assert buf.size == 0


def test_multibyte_sep_split_over_many_chunks():
    buf = ReadBuffer()
    sep = b"<-->"
    for chunk in (b"head<", b"-", b"-", b">tail"):
        assert buf.readline(sep) is None
        buf.push(chunk)
    assert buf.readline(sep) == b"head"
    assert buf.readall() == b"tail"


def test_sep_with_overlapping_prefix():
    # "aaab" with sep "ab", fed byte by byte with an attempt after each
    # byte: the match starts inside the bytes already searched.
    buf = ReadBuffer()
    results = []
    for chunk in (b"a", b"a", b"a", b"b", b"z"):
        buf.push(chunk)
        results.append(buf.readline(b"ab"))
    assert results == [None, None, None, b"aa", None]
    assert buf.readall() == b"z"
    buf.push(b"xab")
    assert buf.readline(b"aba") is None
    buf.push(b"ab")  # "xabab": the match begins 2 bytes before this chunk
    assert buf.readline(b"aba") == b"x"
    assert buf.readall() == b"b"


def test_sep_equal_to_whole_buffer_and_at_start():
    buf = ReadBuffer()
    buf.push(b"\r\n")
    assert buf.readline(b"\r\n") == b""
    assert buf.size == 0
    buf.push(b"\r")
    buf.push(b"\nrest")
    assert buf.readline(b"\r\n") == b""
    assert buf.readall() == b"rest"


def test_changing_sep_between_attempts():
    buf = ReadBuffer()
    buf.push(b"abc\ndef")
    assert buf.readline(b"\r\n") is None  # remembers how far it searched...
    assert buf.readline(b"\n") == b"abc"  # ...but only for "\r\n"
    assert buf.readline(b"e") == b"d"
    assert buf.readline(b"\n") is None
    buf.push(b"g\r\nh")
    assert buf.readline(b"\r\n") == b"fg"
    assert buf.readall() == b"h"


def test_has_line_does_not_consume():
    buf = ReadBuffer()
    buf.push(b"x\ny")
    assert buf.has_line()
    assert buf.has_line()
    assert buf.size == 3
    assert not buf.has_line(b"z")
    assert buf.readline() == b"x"
    assert not buf.has_line()


def test_readline_errors():
    buf = ReadBuffer()
    buf.push(b"a\nb")
    with pytest.raises(ValueError):
        buf.readline(b"")
    with pytest.raises(ValueError):
        buf.has_line(b"")
    with pytest.raises(TypeError):
        buf.readline("\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        buf.has_line(10)  # type: ignore[arg-type]
    assert buf.size == 3


def test_readline_accepts_bytes_like_sep():
    buf = ReadBuffer()
    buf.push(b"a\r\nb\r\nc")
    assert buf.readline(bytearray(b"\r\n")) == b"a"
    assert buf.readline(memoryview(b"\r\n")) == b"b"
    assert buf.readall() == b"c"


@pytest.mark.parametrize("bad", ["text", 5, None, [1, 2], 3.0, object()])
def test_push_rejects_non_bytes(bad):
    buf = ReadBuffer()
    buf.push(b"ok")
    with pytest.raises(TypeError):
        buf.push(bad)
    assert buf.readall() == b"ok"  # 5 must not have become b"\0" * 5


def test_push_copies_mutable_input():
    buf = ReadBuffer()
    ba = bytearray(b"abc")
    buf.push(ba)
    ba[:] = b"XYZ"
    raw = bytearray(b"def")
    buf.push(memoryview(raw))
    raw[0] = ord("Q")
    more = bytearray(b"ghi")
    buf.push(more)  # appended to the internal array
    more[:] = b"!!!"
    assert buf.readall() == b"abcdefghi"


def test_push_memoryview_forms():
    buf = ReadBuffer()
    words = array.array("H", [0x0102, 0x0304])
    buf.push(memoryview(words))  # raw bytes of a non-byte format
    buf.push(memoryview(b"0123456789")[::3])  # non-contiguous
    buf.push(memoryview(b"xyz")[1:])
    assert buf.size == 4 + 4 + 2
    assert buf.readall() == words.tobytes() + b"0369" + b"yz"
    grid = memoryview(b"abcdef").cast("B", shape=[2, 3])  # len(grid) == 2
    assert buf.push(grid) == 6
    assert buf.push(memoryview(array.array("i"))) == 6
    assert buf.push(grid) == 12
    scalar = memoryview(array.array("i", [7])).cast("B").cast("i", shape=[])
    assert buf.push(scalar) == 16  # 0-dim: no len() at all
    assert buf.readall() == b"abcdef" * 2 + array.array("i", [7]).tobytes()


def test_results_are_bytes():
    buf = ReadBuffer()
    buf.push(bytearray(b"ab\ncd"))
    buf.push(memoryview(b"ef\ngh"))
    line = buf.readline()
    part = buf.pop(2)
    rest = buf.readall()
    assert (line, part, rest) == (b"ab", b"cd", b"ef\ngh")
    assert {type(line), type(part), type(rest)} == {bytes}


def test_single_chunk_is_returned_without_copy():
    buf = ReadBuffer()
    chunk = b"a message of some length"
    buf.push(chunk)
    assert buf.pop(len(chunk)) is chunk
    buf.push(chunk)
    assert buf.readall() is chunk
    buf.push(chunk)
    assert buf.pop(1) == b"a"
    assert buf.readall() == chunk[1:]


def test_clear():
    buf = ReadBuffer()
    buf.push(b"abc")
    buf.push(b"def")
    buf.readline(b"x")
    buf.clear()
    assert buf.size == 0 and not buf
    assert buf.readline(b"x") is None
    buf.push(b"zx")
    assert buf.readline(b"x") == b"z"


def test_slots():
    buf = ReadBuffer()
    with pytest.raises(AttributeError):
        buf.anything = 1  # type: ignore[attr-defined]
    assert not hasattr(buf, "__dict__")


def test_saved_search_offset_survives_compaction():
    buf = SmallCompact()
    buf.push(b"aaaaa")
    buf.push(b"aaaaa")
    assert buf.readline() is None  # searched all 10 bytes
    assert buf.pop(6) == b"aaaaaa"  # compacts: the offset must move too
    buf.push(b"\nb")
    assert buf.readline() == b"aaaa"
    assert buf.readall() == b"b"


def test_saved_search_offset_survives_second_chunk():
    buf = ReadBuffer()
    buf.push(b"xxxx")
    assert buf.pop(3) == b"xxx"
    assert buf.readline(b"\r\n") is None  # searched inside the first chunk
    buf.push(b"\r\n")  # now copied into an array: offsets shift by 3
    assert buf.readline(b"\r\n") == b"x"


def test_large_pops_and_lines_across_compaction():
    # Big enough to pass the real 64 KiB compaction threshold several times.
    payload = bytes(range(256)) * 2048  # 512 KiB
    buf, model = ReadBuffer(), Model()
    for i in range(0, len(payload), 1000):
        buf.push(payload[i : i + 1000])
        model.push(payload[i : i + 1000])
        assert buf.pop(700) == model.pop(700)
        assert buf.readline(b"\xfe\xff") == model.readline(b"\xfe\xff")
        assert buf.size == model.size
    while True:
        n = 9000
        out = buf.pop(n)
        assert out == model.pop(n)
        if out is None:
            break
    assert buf.readall() == model.readall()


# -- memory ----------------------------------------------------------------


def _traced_after(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = fn()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        del keep
    finally:
        tracemalloc.stop()
    return used


def test_emptied_buffer_releases_storage():
    def traffic():
        buf = ReadBuffer()
        chunk = b"z" * 65536
        for _ in range(64):  # 4 MiB in, all in one internal array
            buf.push(chunk)
        while buf.pop(10000) is not None:
            pass
        buf.readall()
        assert buf.size == 0
        return buf

    assert _traced_after(traffic) < 16 * 1024


def test_backlog_never_drained_stays_bounded():
    # One byte always stays behind, so the buffer never empties; without
    # compaction the internal array would grow to the full 8 MiB.
    def traffic():
        buf = ReadBuffer()
        buf.push(b"!")
        chunk = b"y" * 1024
        for _ in range(8192):
            buf.push(chunk)
            assert buf.pop(1024) is not None
        assert buf.size == 1
        return buf

    assert _traced_after(traffic) < 512 * 1024


# -- byte-at-a-time feeding ------------------------------------------------


def test_lines_byte_at_a_time():
    stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"
    buf = ReadBuffer()
    lines = []
    for i in range(len(stream)):
        buf.push(stream[i : i + 1])
        while (line := buf.readline(b"\r\n")) is not None:
            lines.append(line)
    assert lines == [b"GET / HTTP/1.1", b"Host: x", b""]
    assert buf.readall() == b"body"


def test_length_prefixed_frames_byte_at_a_time():
    bodies = [b"", b"a", b"hello", bytes(300)]
    stream = b"".join(len(b).to_bytes(2, "big") + b for b in bodies)
    buf = ReadBuffer()
    got, want_len = [], None
    for i in range(len(stream)):
        buf.push(memoryview(stream)[i : i + 1])
        while True:
            if want_len is None:
                head = buf.pop(2)
                if head is None:
                    break
                want_len = int.from_bytes(head, "big")
            body = buf.pop(want_len)
            if body is None:
                break
            got.append(body)
            want_len = None
    assert got == bodies
    assert buf.size == 0


# -- properties ------------------------------------------------------------

stream_bytes = st.text(alphabet="ab\r\nx", max_size=200).map(str.encode)
# Short chunks make failed searches (and so the saved search offset) common.
small_chunks = st.text(alphabet="ab\r\nx", max_size=12).map(str.encode)
seps = st.sampled_from([b"\n", b"\r\n", b"ab", b"aba", b"\r\n\r\n", b"x"])
ops = st.one_of(
    st.tuples(st.just("pop"), st.integers(0, 25)),
    st.tuples(st.just("readline"), seps),
    st.tuples(st.just("has_line"), seps),
    st.tuples(st.just("readall")),
    st.tuples(st.just("size")),
)
kinds = st.sampled_from([bytes, bytearray, memoryview])
buffer_classes = st.sampled_from([ReadBuffer, SmallCompact])


@settings(max_examples=300)
@given(
    data=stream_bytes,
    cuts_a=st.lists(st.integers(0, 200), max_size=30),
    cuts_b=st.lists(st.integers(0, 200), max_size=30),
    operations=st.lists(ops, max_size=30),
    cls=buffer_classes,
)
def test_any_split_gives_same_results(data, cuts_a, cuts_b, operations, cls):
    results = []
    for cuts in (cuts_a, cuts_b, []):
        buf = cls()
        for chunk in split(data, cuts):
            buf.push(chunk)
        results.append([run_op(buf, op) for op in operations] + [buf.readall()])
    model = Model()
    model.push(data)
    expected = [run_op(model, op) for op in operations] + [model.readall()]
    assert results == [expected, expected, expected]


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(small_chunks, kinds, st.lists(ops, max_size=4)), max_size=40
    ),
    cls=buffer_classes,
)
def test_interleaved_pushes_match_model(steps, cls):
    buf, model = cls(), Model()
    for chunk, kind, operations in steps:
        assert buf.push(kind(chunk)) == model.push(chunk)
        for op in operations:
            assert run_op(buf, op) == run_op(model, op), op
            assert buf.size == model.size == len(buf)
            assert bool(buf) == bool(model.data)
    assert buf.readall() == model.readall()


@settings(max_examples=300)
@given(
    steps=st.lists(st.tuples(small_chunks, st.integers(0, 12)), max_size=40),
    sep=seps,
    cls=buffer_classes,
)
def test_line_attempt_after_every_push_with_pops(steps, sep, cls):
    # The socket layer's pattern: retry readline(sep) after each chunk,
    # while other reads consume (and so compact) in between.
    buf, model = cls(), Model()
    for chunk, n in steps:
        buf.push(chunk)
        model.push(chunk)
        assert buf.readline(sep) == model.readline(sep)
        assert buf.pop(n) == model.pop(n)
    assert buf.readall() == model.readall()


@settings(max_examples=300)
@given(data=stream_bytes, cuts=st.lists(st.integers(0, 200)), sep=seps)
def test_streamed_lines_independent_of_chunking(data, cuts, sep):
    # Attempt readline after every push, as the socket layer does.
    buf = ReadBuffer()
    lines = []
    for chunk in split(data, cuts):
        buf.push(chunk)
        while (line := buf.readline(sep)) is not None:
            lines.append(line)
    *complete, rest = data.split(sep)
    assert lines == complete
    assert buf.readall() == rest


@settings(max_examples=200)
@given(data=stream_bytes, sizes=st.lists(st.integers(1, 7), min_size=1))
def test_streamed_pops_byte_at_a_time(data, sizes):
    buf = ReadBuffer()
    got = []
    k = 0
    for i in range(len(data)):
        buf.push(data[i : i + 1])
        while (part := buf.pop(sizes[k % len(sizes)])) is not None:
            got.append(part)
            k += 1
    assert b"".join(got) + buf.readall() == data
    assert [len(p) for p in got] == [sizes[j % len(sizes)] for j in range(len(got))]


class BufferMachine(RuleBasedStateMachine):
    """Random push/consume sequences against the model, compacting early."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = SmallCompact()
        self.model = Model()

    @rule(chunk=small_chunks, kind=kinds)
    def push(self, chunk, kind):
        assert self.buf.push(kind(chunk)) == self.model.push(chunk)

    @rule(n=st.integers(0, 40))
    def pop(self, n):
        assert self.buf.pop(n) == self.model.pop(n)

    @rule(sep=seps)
    def readline(self, sep):
        assert self.buf.readline(sep) == self.model.readline(sep)

    @rule(sep=seps)
    def has_line(self, sep):
        assert self.buf.has_line(sep) == self.model.has_line(sep)

    @rule()
    def readall(self):
        assert self.buf.readall() == self.model.readall()

    @rule()
    def clear(self):
        self.buf.clear()
        self.model.data = b""

    @invariant()
    def same_size(self):
        assert self.buf.size == len(self.buf) == self.model.size
        assert bool(self.buf) == (self.model.size > 0)


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(max_examples=150, stateful_step_count=40)
