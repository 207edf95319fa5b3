"""gsocket.socket reads over real loopback sockets: read(n), read(),
readline, readall, block, None with the bytes kept, one reader at a time,
timeout=. The peer is a gevent client socket (skynet-socket-semantics.md
section 8, scenarios 15-23)."""

from __future__ import annotations

import random
import socket as stdlib_socket

import gevent
import pytest

from gsocket import socket as gs

pytest_plugins = ["_peers"]                 # fixture: pair

from _peers import Pair, reader_waits, routed, row, wait_for  # noqa: E402


pytestmark = pytest.mark.usefixtures("driver")


def send_pieces(client, data: bytes, sizes, delay: float = 0.0) -> None:
    """Send data in pieces of the given sizes, each flushed on its own."""
    client.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
    offset = 0
    for size in sizes:
        if offset >= len(data):
            break
        client.sendall(data[offset:offset + size])
        offset += size
        gevent.sleep(delay)
    if offset < len(data):
        client.sendall(data[offset:])


def wait_buffered(socket_id: int, nbytes: int) -> None:
    """Wait until the server side has read nbytes from the kernel."""
    wait_for(lambda: (r := row(socket_id)) is not None and r.read >= nbytes)
    routed()            # and the dispatcher has pushed the DATA events


# ---------------------------------------------------------------------- read(n)

def test_read_n_joins_one_byte_pieces(pair: Pair) -> None:
    reader = gevent.spawn(gs.read, pair.id, 11)
    send_pieces(pair.client, b"hello world", [1] * 11, delay=0.002)
    assert reader.get(timeout=5) == b"hello world"


def test_read_n_exact_across_any_chunking(pair: Pair) -> None:
    rng = random.Random(1234)
    data = rng.randbytes(200_000)
    sender = gevent.spawn(send_pieces, pair.client, data,
                          [rng.choice([1, 7, 100, 1500, 4096, 65536]) for _ in range(400)], 0)
    got = []
    total = 0
    while total < len(data):
        n = min(rng.choice([1, 2, 3, 10, 999, 4096, 70_000]), len(data) - total)
        piece = gs.read(pair.id, n)
        assert piece is not None and len(piece) == n
        got.append(piece)
        total += n
    sender.get(timeout=5)
    assert b"".join(got) == data


def test_read_n_returns_buffered_bytes_without_waiting(pair: Pair) -> None:
    pair.client.sendall(b"0123456789")
    wait_buffered(pair.id, 10)
    assert gs.read(pair.id, 4, timeout=0) == b"0123"
    assert gs.read(pair.id, 6, timeout=0) == b"456789"
    with pytest.raises(TimeoutError):
        gs.read(pair.id, 1, timeout=0)


def test_read_zero_returns_empty_at_once_and_consumes_nothing(pair: Pair) -> None:
    # deliberate difference 4: skynet's read(id, 0) waits for the next packet
    assert gs.read(pair.id, 0) == b""
    pair.client.sendall(b"xyz")
    wait_buffered(pair.id, 3)
    assert gs.read(pair.id, 0) == b""
    assert gs.read(pair.id, 3) == b"xyz"


def test_read_rejects_bad_sizes(pair: Pair) -> None:
    with pytest.raises(ValueError):
        gs.read(pair.id, -1)
    with pytest.raises(ValueError):
        gs.read(pair.id, 1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- read()

def test_read_any_returns_everything_buffered(pair: Pair) -> None:
    pair.client.sendall(b"abc")
    pair.client.sendall(b"defgh")
    wait_buffered(pair.id, 8)
    assert gs.read(pair.id) == b"abcdefgh"


def test_read_any_waits_for_the_next_packet_only(pair: Pair) -> None:
    reader = gevent.spawn(gs.read, pair.id)
    reader_waits(pair.id)
    assert not reader.ready()         # nothing buffered: it waits
    pair.client.sendall(b"first")
    assert reader.get(timeout=5) == b"first"
    reader = gevent.spawn(gs.read, pair.id)
    reader_waits(pair.id)
    assert not reader.ready()
    pair.client.sendall(b"second")
    assert reader.get(timeout=5) == b"second"


def test_read_any_is_at_least_one_byte(pair: Pair) -> None:
    for byte in b"xyz":
        pair.client.sendall(bytes([byte]))
        data = gs.read(pair.id)
        assert data == bytes([byte])


# ---------------------------------------------------------------------- readline

def test_readline_crlf_lines_then_none_at_close(pair: Pair) -> None:
    pair.client.sendall(b"a\r\nb\r\n")
    assert gs.readline(pair.id, b"\r\n") == b"a"
    assert gs.readline(pair.id, "\r\n") == b"b"      # str separators too
    pair.client.close()
    assert gs.readline(pair.id, b"\r\n") is None
    assert gs.readall(pair.id) == b""


def test_readline_default_separator_and_empty_lines(pair: Pair) -> None:
    pair.client.sendall(b"one\n\nthree\n")
    assert gs.readline(pair.id) == b"one"
    assert gs.readline(pair.id) == b""
    assert gs.readline(pair.id) == b"three"


def test_readline_separator_split_across_chunks(pair: Pair) -> None:
    reader = gevent.spawn(gs.readline, pair.id, b"\r\n")
    send_pieces(pair.client, b"ab\r\ncd", [3, 3], delay=0.02)
    assert reader.get(timeout=5) == b"ab"
    assert gs.read(pair.id, 2) == b"cd"


@pytest.mark.parametrize("sep", [b"|", b"\r\n", b"--END--", b"\x00\xff\x00", b"aab"])
def test_readline_multibyte_separator_byte_by_byte(pair: Pair, sep: bytes) -> None:
    lines = [b"first", b"", b"aaa-aa", b"x" * 40]
    lines = [line.replace(sep, b"") for line in lines]
    stream = b"".join(line + sep for line in lines) + b"tail"
    sender = gevent.spawn(send_pieces, pair.client, stream, [1] * len(stream), 0.0005)
    got = [gs.readline(pair.id, sep) for _ in lines]
    sender.get(timeout=5)
    assert got == lines
    assert gs.read(pair.id, 4) == b"tail"


def test_readline_separator_longer_than_a_chunk_random_splits(pair: Pair) -> None:
    rng = random.Random(7)
    sep = b"<<SEP>>"
    lines = [rng.randbytes(rng.randrange(0, 3000)).replace(b"<", b"_") for _ in range(40)]
    stream = b"".join(line + sep for line in lines)
    sizes = [rng.randrange(1, 10) for _ in range(2000)]
    sender = gevent.spawn(send_pieces, pair.client, stream, sizes, 0)
    got = [gs.readline(pair.id, sep) for _ in lines]
    sender.get(timeout=10)
    assert got == lines


def test_readline_rejects_empty_separator(pair: Pair) -> None:
    with pytest.raises(ValueError):
        gs.readline(pair.id, b"")


def test_readline_keeps_partial_line_when_peer_closes(pair: Pair) -> None:
    pair.client.sendall(b"l1\nl2\nl3\nhalf a li")
    pair.client.close()
    assert [gs.readline(pair.id) for _ in range(3)] == [b"l1", b"l2", b"l3"]
    assert gs.readline(pair.id) is None
    assert gs.readline(pair.id) is None             # repeatable
    assert gs.readall(pair.id) == b"half a li"      # nothing lost


# ---------------------------------------------------------------------- readall

def test_readall_waits_for_close_and_returns_everything(pair: Pair) -> None:
    reader = gevent.spawn(gs.readall, pair.id)
    data = bytes(range(256)) * 4  # 1024 bytes
    send_pieces(pair.client, data, [100] * 11, delay=0.005)
    wait_buffered(pair.id, len(data))
    assert not reader.ready()          # peer still connected
    pair.client.close()
    assert reader.get(timeout=5) == data
    assert gs.readall(pair.id) == b""  # after the close: empty, at once
    assert gs.read(pair.id) is None


def test_readall_not_hidden_by_backpressure(pair: Pair) -> None:
    # deliberate difference 2: more than 128 KiB then a half-close must not hang
    data = random.Random(3).randbytes(1 << 20)
    reader = gevent.spawn(gs.readall, pair.id)

    def send_then_half_close() -> None:
        pair.client.sendall(data)
        pair.client.shutdown(stdlib_socket.SHUT_WR)

    sender = gevent.spawn(send_then_half_close)
    assert reader.get(timeout=10) == data
    sender.get(timeout=5)


def test_readall_after_backpressure_pause_sees_close(pair: Pair) -> None:
    # the socket is paused (nobody reading) before readall starts waiting
    data = random.Random(4).randbytes(4_000_000)
    sender = gevent.spawn(pair.client.sendall, data)
    wait_for(lambda: (r := row(pair.id)) is not None and not r.reading)
    reader = gevent.spawn(gs.readall, pair.id)
    sender.get(timeout=10)
    pair.client.shutdown(stdlib_socket.SHUT_WR)
    assert reader.get(timeout=10) == data


def test_readall_of_unknown_id_is_empty(driver) -> None:
    assert gs.readall(987654) == b""
    assert gs.read(987654) is None
    assert gs.readline(987654) is None
    assert gs.block(987654) is False


# ---------------------------------------------------------------------- block

def test_block_true_on_data_and_consumes_nothing(pair: Pair) -> None:
    blocker = gevent.spawn(gs.block, pair.id)
    reader_waits(pair.id)
    assert not blocker.ready()
    pair.client.sendall(b"data")
    assert blocker.get(timeout=5) is True
    assert gs.block(pair.id) is True        # data buffered: at once
    assert gs.read(pair.id) == b"data"


def test_block_false_when_peer_closes(pair: Pair) -> None:
    blocker = gevent.spawn(gs.block, pair.id)
    reader_waits(pair.id)
    pair.client.close()
    assert blocker.get(timeout=5) is False
    assert gs.block(pair.id) is False


# ---------------------------------------------------------------------- None, bytes kept

def test_read_n_none_when_peer_closes_short_bytes_kept(pair: Pair) -> None:
    reader = gevent.spawn(gs.read, pair.id, 10)
    pair.client.sendall(b"12345")
    wait_buffered(pair.id, 5)
    pair.client.close()
    assert reader.get(timeout=5) is None
    assert gs.read(pair.id, 10) is None          # at once now, still None
    assert gs.read(pair.id, 3) == b"123"         # a smaller read still gets bytes
    assert gs.readall(pair.id) == b"45"
    assert gs.read(pair.id) is None


def test_peer_close_mid_message_loses_nothing(pair: Pair) -> None:
    rng = random.Random(5)
    data = rng.randbytes(300_001)
    pair.client.sendall(data)
    pair.client.close()
    got = []
    while True:
        piece = gs.read(pair.id, 65536)
        if piece is None:
            break
        got.append(piece)
    got.append(gs.readall(pair.id))
    assert b"".join(got) == data
    # the entry stays until close(id)
    assert not gs.invalid(pair.id)
    assert gs.disconnected(pair.id) is True
    gs.close(pair.id)
    assert gs.invalid(pair.id)


# ---------------------------------------------------------------------- one reader

SECOND_READERS = {
    "read_n": lambda i: gs.read(i, 1), "read_any": lambda i: gs.read(i),
    "readline": lambda i: gs.readline(i), "readall": lambda i: gs.readall(i),
    "block": lambda i: gs.block(i),
}


def test_second_reader_gets_runtime_error(pair: Pair) -> None:
    for name, second in SECOND_READERS.items():
        first = gevent.spawn(gs.read, pair.id, 5)
        reader_waits(pair.id)
        with pytest.raises(RuntimeError):
            second(pair.id)
        pair.client.sendall(b"hello")
        assert first.get(timeout=5) == b"hello", name   # the first reader is unaffected
        pair.client.sendall(b"again")
        assert gs.read(pair.id, 5) == b"again", name    # and the slot is free again


def test_second_reader_from_another_greenlet(pair: Pair) -> None:
    first = gevent.spawn(gs.readline, pair.id)
    second = gevent.spawn(gs.readline, pair.id)
    gevent.sleep(0.02)
    assert second.ready() and isinstance(second.exception, RuntimeError)
    pair.client.sendall(b"line\n")
    assert first.get(timeout=5) == b"line"


# ---------------------------------------------------------------------- timeout=

def test_read_timeout_keeps_bytes_and_is_repeatable(pair: Pair) -> None:
    pair.client.sendall(b"12345")
    wait_buffered(pair.id, 5)
    for _ in range(3):
        with pytest.raises(TimeoutError):
            gs.read(pair.id, 10, timeout=0.05)
    pair.client.sendall(b"67890")
    assert gs.read(pair.id, 10, timeout=5) == b"1234567890"


TIMED_READS = {
    "read_n": lambda i: gs.read(i, 3, timeout=0.05), "read_any": lambda i: gs.read(i, timeout=0.05),
    "readline": lambda i: gs.readline(i, timeout=0.05),
    "readline_sep": lambda i: gs.readline(i, b"--", timeout=0.05),
    "readall": lambda i: gs.readall(i, timeout=0.05), "block": lambda i: gs.block(i, timeout=0.05),
}


def test_every_read_times_out_keeping_bytes(pair: Pair) -> None:
    for name, call in TIMED_READS.items():
        for _ in range(2):
            with pytest.raises(TimeoutError):
                call(pair.id)
        before = row(pair.id).read
        pair.client.sendall(b"ab")
        wait_buffered(pair.id, before + 2)
        # bytes that arrived while nobody waited (or after a timeout) are all there
        pair.client.sendall(b"c\n")
        assert gs.readline(pair.id, timeout=5) == b"abc", name
        assert not gs.disconnected(pair.id), name


def test_readline_timeout_keeps_partial_line(pair: Pair) -> None:
    pair.client.sendall(b"partial")
    wait_buffered(pair.id, 7)
    with pytest.raises(TimeoutError):
        gs.readline(pair.id, timeout=0.05)
    with pytest.raises(TimeoutError):
        gs.readall(pair.id, timeout=0.05)
    pair.client.sendall(b" line\nrest")
    assert gs.readline(pair.id, timeout=5) == b"partial line"
    pair.client.close()
    assert gs.readall(pair.id, timeout=5) == b"rest"


def test_timeout_zero_and_bad_timeouts(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        gs.read(pair.id, 1, timeout=0)
    with pytest.raises(ValueError):
        gs.read(pair.id, 1, timeout=-1)
    with pytest.raises(ValueError):
        gs.readline(pair.id, timeout="soon")  # type: ignore[arg-type]


def test_without_timeout_read_waits_as_long_as_it_takes(pair: Pair) -> None:
    reader = gevent.spawn(gs.read, pair.id, 4)
    gevent.sleep(0.3)
    assert not reader.ready()
    pair.client.sendall(b"late")
    assert reader.get(timeout=5) == b"late"


def test_listener_id_is_not_readable(driver) -> None:
    listen_id = gs.listen("127.0.0.1", 0)
    with pytest.raises(ValueError):
        gs.read(listen_id)
    gs.close(listen_id)


def test_second_reader_cannot_take_buffered_bytes(pair: Pair) -> None:
    # A waiting reader owns the buffer: a second reader must not take bytes
    # from under it, even when they are already buffered.
    first = gevent.spawn(gs.read, pair.id, 10)
    reader_waits(pair.id)
    pair.client.sendall(b"01234")
    wait_buffered(pair.id, 5)
    for steal in (lambda: gs.read(pair.id, 4), lambda: gs.read(pair.id),
                  lambda: gs.readall(pair.id), lambda: gs.block(pair.id)):
        with pytest.raises(RuntimeError):
            steal()
    pair.client.sendall(b"56789")
    assert first.get(timeout=5) == b"0123456789"
