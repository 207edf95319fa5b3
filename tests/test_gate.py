"""gsocket.gate over real loopback sockets: framing, maxclient (difference 6),
per-client order when the handler blocks (difference 7), open/close/abandon,
errors, warnings, backpressure. skynet scenarios 62-70 where they apply."""

from __future__ import annotations

import logging
import socket as stdlib_socket
from typing import Any, Iterator, List, Optional, Tuple

import gevent
import gevent.queue
import gevent.socket
import pytest

from gsocket import skynet
from gsocket import socket as gs
from gsocket.gate import MAILBOX_LIMIT, Gate
from gsocket.netpack import pack
from helpers import recv_exact, recv_to_end, set_linger_zero

WAIT = 10.0


class Recorder:
    """A handler recording every callback; opens clients in ``connect``
    unless ``auto_open`` is False; echoes frames when ``echo``."""

    def __init__(self, auto_open: bool = True, echo: bool = False) -> None:
        self.gate: Optional[Gate] = None
        self.auto_open = auto_open
        self.echo = echo
        self.log: List[Tuple[Any, ...]] = []
        self.queue: gevent.queue.Queue = gevent.queue.Queue()

    def record(self, *event: Any) -> None:
        self.log.append(event)
        self.queue.put(event)

    def open(self) -> None:
        assert self.gate is not None
        self.record("open", self.gate.address)

    def connect(self, socket_id: int, address: str) -> None:
        self.record("connect", socket_id, address)
        if self.auto_open:
            assert self.gate is not None
            self.gate.openclient(socket_id)

    def message(self, socket_id: int, data: bytes) -> None:
        self.record("message", socket_id, data)
        if self.echo:
            assert self.gate is not None
            self.gate.send(socket_id, data)

    def disconnect(self, socket_id: int) -> None:
        self.record("disconnect", socket_id)

    def error(self, socket_id: int, text: str) -> None:
        self.record("error", socket_id, text)

    def warning(self, socket_id: int, kib: int) -> None:
        self.record("warning", socket_id, kib)

    def next(self, kind: Optional[str] = None, socket_id: Optional[int] = None,
             timeout: float = WAIT) -> Tuple[Any, ...]:
        """The next recorded event (of ``kind`` for ``socket_id``; others skipped)."""
        with gevent.Timeout(timeout, AssertionError(f"no {kind} for {socket_id}; log: {self.log[-8:]}")):
            while True:
                event = self.queue.get()
                if kind is not None and event[0] != kind:
                    continue
                if socket_id is not None and event[1] != socket_id:
                    continue
                return event

    def of(self, kind: str, socket_id: Optional[int] = None) -> List[Tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind and (socket_id is None or e[1] == socket_id)]


class Clients:
    """gevent client sockets, closed at teardown."""

    def __init__(self) -> None:
        self.socks: List[gevent.socket.socket] = []

    def connect(self, gate: Gate) -> gevent.socket.socket:
        sock = gevent.socket.create_connection(gate.address, timeout=WAIT)
        self.socks.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


@pytest.fixture
def clients(driver: Any) -> Iterator[Clients]:
    c = Clients()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def make_gate(driver: Any) -> Iterator[Any]:
    gates: List[Gate] = []

    def make(handler: Recorder, **options: Any) -> Gate:
        gate = Gate(handler, "127.0.0.1", 0, **options)
        handler.gate = gate
        gates.append(gate)
        gate.start()
        return gate

    yield make
    for gate in gates:
        gate.close()


def read_frame(sock: Any, header: int = 2) -> Optional[bytes]:
    head = recv_exact(sock, header)
    if len(head) < header:
        return None
    return recv_exact(sock, int.from_bytes(head, "big"))


def connect_client(gate: Gate, handler: Recorder, clients: Clients) -> Tuple[gevent.socket.socket, int]:
    sock = clients.connect(gate)
    event = handler.next("connect")
    assert event[2] == "%s:%d" % sock.getsockname()
    return sock, event[1]


def row(socket_id: int) -> Any:
    return next((r for r in gs.netstat() if r.id == socket_id), None)


def wait_until(predicate: Any, timeout: float = WAIT) -> Any:
    with gevent.Timeout(timeout, AssertionError("condition not met")):
        while not predicate():
            gevent.sleep(0.005)


# ---------------------------------------------------------------------- start, framing

def test_start_returns_listen_id_after_open(make_gate: Any) -> None:
    handler = Recorder()
    gate = make_gate(handler)
    assert handler.log == [("open", gate.address)]
    assert gate.address[1] > 0                       # scenario 70: port 0 gives the real port
    listener = row(gate.listen_id)
    assert listener is not None and listener.type == "LISTEN"
    assert gate.client_count == 0
    with pytest.raises(RuntimeError):
        gate.start()


def test_frames_reassembled_in_order(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
    for piece in (b"\x00", b"\x05he", b"llo"):                       # scenario 62
        sock.sendall(piece)
        gevent.sleep(0.01)
    assert handler.next("message") == ("message", cid, b"hello")
    wire = pack(b"one") + pack(b"two") + pack(b"three") + pack(b"four")
    cut = len(pack(b"one") + pack(b"two") + pack(b"three")) + 1
    sock.sendall(wire[:cut])                                          # scenario 63
    assert [handler.next("message")[2] for _ in range(3)] == [b"one", b"two", b"three"]
    sock.sendall(wire[cut:])
    assert handler.next("message")[2] == b"four"
    sock.sendall(b"\x00\x00")                                         # scenario 64
    assert handler.next("message")[2] == b""
    big = bytes(range(256)) * 256
    sock.sendall(pack(big[:65535]))                                   # scenario 65
    assert handler.next("message")[2] == big[:65535]
    assert not handler.of("error")


def test_send_frames_replies(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(echo=True)
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"ping") + pack(b"") + pack(b"x" * 60000))
    assert read_frame(sock) == b"ping"
    assert read_frame(sock) == b""
    assert read_frame(sock) == b"x" * 60000
    assert gate.send(cid, "text") is True
    assert read_frame(sock) == b"text"
    assert gate.send(cid + 1000, b"nobody") is False
    with pytest.raises(ValueError):
        gate.send(cid, b"x" * 65536)


def test_four_byte_headers(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(echo=True)
    gate = make_gate(handler, header=4, max_packet=1 << 20)
    sock, cid = connect_client(gate, handler, clients)
    payload = b"L" * 300_000
    sock.sendall(pack(payload, 4))
    assert read_frame(sock, 4) == payload
    assert handler.of("message") == [("message", cid, payload)]


def test_many_clients_each_get_their_frames(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(echo=True)
    gate = make_gate(handler, nodelay=True)
    socks = [clients.connect(gate) for _ in range(50)]

    def talk(index: int, sock: Any) -> None:
        frames = [b"%d:%d:" % (index, n) + b"z" * (n * 37 % 500) for n in range(20)]
        wire = b"".join(pack(f) for f in frames)
        step = 1 + index % 7
        for start in range(0, len(wire), step * 101):
            sock.sendall(wire[start:start + step * 101])
        assert [read_frame(sock) for _ in frames] == frames

    gevent.joinall([gevent.spawn(talk, i, s) for i, s in enumerate(socks)], raise_error=True,
                   timeout=WAIT * 2)
    assert len(handler.of("connect")) == 50 and len(handler.of("message")) == 1000
    assert gate.client_count == 50


# ---------------------------------------------------------------------- maxclient (difference 6)

def test_exactly_maxclient_clients(make_gate: Any, clients: Clients, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="gsocket.gate")
    handler = Recorder()
    gate = make_gate(handler, maxclient=3)
    admitted = [connect_client(gate, handler, clients) for _ in range(3)]   # not maxclient - 1
    assert gate.client_count == 3
    extra = clients.connect(gate)
    extra.settimeout(WAIT)
    assert recv_to_end(extra)[0] == b""                  # closed at once
    wait_until(lambda: gate.refused == 1)
    assert len(handler.of("connect")) == 3 and gate.client_count == 3
    assert any("refused" in r.getMessage() and "1 refused so far" in r.getMessage()
               for r in caplog.records)
    # one leaves: its disconnect, then room for one more
    first_sock, first_id = admitted[0]
    first_sock.close()
    assert handler.next("disconnect") == ("disconnect", first_id)
    assert gate.client_count == 2
    sock, cid = connect_client(gate, handler, clients)
    assert gate.client_count == 3
    sock.sendall(pack(b"in"))
    assert handler.next("message") == ("message", cid, b"in")
    # a second refusal is counted too, and never reported as a disconnect
    extra2 = clients.connect(gate)
    extra2.settimeout(WAIT)
    assert recv_to_end(extra2)[0] == b""
    wait_until(lambda: gate.refused == 2)
    gate.close()
    wait_until(lambda: len(handler.of("disconnect")) == 4)
    connected = sorted(e[1] for e in handler.of("connect"))
    assert sorted(e[1] for e in handler.of("disconnect")) == connected   # each once, none unannounced


def test_maxclient_zero_refuses_everyone(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()
    gate = make_gate(handler, maxclient=0)
    for _ in range(3):
        sock = clients.connect(gate)
        sock.settimeout(WAIT)
        assert recv_to_end(sock)[0] == b""
    wait_until(lambda: gate.refused == 3)
    assert [e[0] for e in handler.log] == ["open"]


# ---------------------------------------------------------------------- bad clients

def test_oversized_frame_gives_error_then_disconnect(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(echo=True)
    gate = make_gate(handler, max_packet=100)
    good, good_id = connect_client(gate, handler, clients)
    bad, bad_id = connect_client(gate, handler, clients)
    bad.sendall(pack(b"fine") + b"\x00\x65" + b"j" * 101)
    assert handler.next("message", bad_id)[2] == b"fine"
    error = handler.next("error", bad_id)
    assert "101" in error[2] and "limit" in error[2]
    assert handler.next("disconnect", bad_id) == ("disconnect", bad_id)
    bad.settimeout(WAIT)
    data, _ = recv_to_end(bad)
    assert data in (b"", pack(b"fine"))                  # the echo may be dropped by the shutdown
    events = [e[0] for e in handler.log if len(e) > 1 and e[1] == bad_id]
    assert events == ["connect", "message", "error", "disconnect"]
    good.sendall(pack(b"still served"))
    assert read_frame(good) == b"still served"
    wait_until(lambda: row(bad_id) is None)
    assert gate.client_count == 1


def test_reset_gives_error_then_disconnect(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(echo=True)                        # scenario 69
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"hi"))
    assert read_frame(sock) == b"hi"
    set_linger_zero(sock)
    sock.close()
    handler.next("disconnect", cid)
    events = [e[0] for e in handler.log if len(e) > 1 and e[1] == cid]
    assert events == ["connect", "message", "error", "disconnect"]
    assert "reset" in handler.of("error", cid)[0][2].lower()     # with the reason
    assert gate.client_count == 0


def test_handler_exception_is_logged_and_serving_goes_on(make_gate: Any, clients: Clients,
                                                         caplog: Any) -> None:
    class Crashing(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            super().message(socket_id, data)
            if data == b"crash":
                raise RuntimeError("handler bug")

    handler = Crashing(echo=True)
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"crash") + pack(b"after"))
    assert read_frame(sock) == b"crash"
    assert read_frame(sock) == b"after"
    assert any("handler bug" in (r.exc_text or "") or r.exc_info for r in caplog.records
               if r.name == "gsocket.gate")
    assert gate.client_count == 1


# ---------------------------------------------------------- order while the handler blocks (difference 7)

def test_frames_of_one_client_stay_in_order_while_handler_blocks(make_gate: Any, clients: Clients) -> None:
    token = object()

    class Blocking(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            super().message(socket_id, data)
            if data == b"block":
                skynet.wait(token)                        # hands the dispatcher over
                self.record("unblocked", socket_id)

    handler = Blocking()
    gate = make_gate(handler)
    a, a_id = connect_client(gate, handler, clients)
    b, b_id = connect_client(gate, handler, clients)
    a.sendall(pack(b"block") + pack(b"a2") + pack(b"a3"))   # scenario 71, one packet
    assert handler.next("message", a_id)[2] == b"block"
    b.sendall(pack(b"b1"))
    assert handler.next("message", b_id)[2] == b"b1"        # another client keeps flowing
    a.sendall(pack(b"a4"))
    gevent.sleep(0.05)
    assert [e[2] for e in handler.of("message", a_id)] == [b"block"]   # a2..a4 wait their turn
    assert skynet.wakeup(token)
    handler.next("message", a_id)
    wait_until(lambda: len(handler.of("message", a_id)) == 4)
    a_events = [e for e in handler.log if len(e) > 1 and e[1] == a_id and e[0] != "connect"]
    assert a_events == [("message", a_id, b"block"), ("unblocked", a_id), ("message", a_id, b"a2"),
                        ("message", a_id, b"a3"), ("message", a_id, b"a4")]


def test_order_with_sleeping_handler_on_two_clients(make_gate: Any, clients: Clients) -> None:
    class Sleepy(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            gevent.sleep(0.002)
            super().message(socket_id, data)

    handler = Sleepy()
    gate = make_gate(handler)
    pairs = [connect_client(gate, handler, clients) for _ in range(2)]
    for sock, _ in pairs:
        sock.sendall(b"".join(pack(b"%d" % n) for n in range(40)))
    wait_until(lambda: len(handler.of("message")) == 80)
    for _, cid in pairs:
        assert [e[2] for e in handler.of("message", cid)] == [b"%d" % n for n in range(40)]


def test_disconnect_comes_after_the_frames_of_a_blocked_client(make_gate: Any, clients: Clients) -> None:
    token = object()

    class Blocking(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            super().message(socket_id, data)
            if data == b"block":
                skynet.wait(token)

    handler = Blocking()
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"block") + pack(b"last"))
    handler.next("message", cid)
    sock.close()
    wait_until(lambda: gate.client_count == 0)              # the close was seen ...
    assert not handler.of("disconnect")                     # ... but is delivered in turn
    skynet.wakeup(token)
    handler.next("disconnect", cid)
    assert [e[0] for e in handler.log[-2:]] == ["message", "disconnect"]
    assert handler.of("message", cid)[-1][2] == b"last"


def test_blocked_handler_pauses_reading_a_flooding_client(make_gate: Any, clients: Clients) -> None:
    token = object()

    class Blocking(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            super().message(socket_id, data)
            if data == b"block":
                skynet.wait(token)

    handler = Blocking()
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    frames = [b"%06d" % n + b"f" * 3994 for n in range(4000)]         # 16 MB behind a blocked frame
    sender = gevent.spawn(sock.sendall, pack(b"block") + b"".join(pack(f) for f in frames))
    handler.next("message", cid)
    wait_until(lambda: row(cid) is not None and not row(cid).reading)   # paused, not buffering 2 MiB
    gevent.sleep(0.1)
    read = row(cid).read
    # The mailbox limit plus what was read before the pause took effect
    # (reads already queued as events); the rest waits in the kernel.
    assert MAILBOX_LIMIT < read < 8 * 1024 * 1024
    assert row(cid).read == read
    skynet.wakeup(token)
    sender.get(timeout=WAIT * 2)
    wait_until(lambda: len(handler.of("message", cid)) == 4001, timeout=WAIT * 2)
    assert [e[2] for e in handler.of("message", cid)[1:]] == frames
    wait_until(lambda: row(cid).reading)


# ---------------------------------------------------------------------- openclient / closeclient / close

def test_not_read_until_openclient(make_gate: Any, clients: Clients) -> None:
    handler = Recorder(auto_open=False)                     # scenario 67
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"early") + pack(b"bird"))
    gevent.sleep(0.05)
    assert not handler.of("message")
    assert row(cid).read == 0
    gate.openclient(cid)
    gate.openclient(cid)                                    # twice is harmless
    assert handler.next("message")[2] == b"early"
    assert handler.next("message")[2] == b"bird"


def test_closeclient_flushes_replies_and_drops_later_frames(make_gate: Any, clients: Clients,
                                                            caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="gsocket.gate")

    class Quitting(Recorder):
        def message(self, socket_id: int, data: bytes) -> None:
            super().message(socket_id, data)
            assert self.gate is not None
            if data == b"quit":
                self.gate.send(socket_id, b"bye" * 20000)
                self.gate.closeclient(socket_id)
                assert self.gate.send(socket_id, b"late") is False

    handler = Quitting()
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"quit") + pack(b"x") + pack(b"y"))
    sock.settimeout(WAIT)
    data, how = recv_to_end(sock)
    assert how is None and data == pack(b"bye" * 20000)     # flushed, then FIN
    handler.next("disconnect", cid)
    assert [e[2] for e in handler.of("message", cid)] == [b"quit"]
    assert any("drop message" in r.getMessage() for r in caplog.records)
    assert len(handler.of("disconnect", cid)) == 1
    wait_until(lambda: row(cid) is None)
    gate.closeclient(cid)                                   # gone: ignored


def test_peer_close_disconnects_and_releases_the_socket(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()                                    # scenario 68, without the CLOSE_WAIT trap
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    sock.sendall(pack(b"bye"))
    sock.shutdown(stdlib_socket.SHUT_WR)
    assert handler.next("message", cid)[2] == b"bye"
    handler.next("disconnect", cid)
    wait_until(lambda: row(cid) is None)                    # closed by the gate, not left CLOSING
    sock.settimeout(WAIT)
    assert recv_to_end(sock)[0] == b""
    assert gate.send(cid, b"x") is False


def test_close_stops_listening_and_disconnects_everyone(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()
    gate = make_gate(handler)
    address = gate.address
    pairs = [connect_client(gate, handler, clients) for _ in range(3)]
    gate.close()
    gate.close()
    for sock, cid in pairs:
        sock.settimeout(WAIT)
        assert recv_to_end(sock)[0] == b""
    wait_until(lambda: len(handler.of("disconnect")) == 3)
    assert sorted(e[1] for e in handler.of("disconnect")) == sorted(cid for _, cid in pairs)
    with pytest.raises(ConnectionRefusedError):
        stdlib_socket.create_connection(address, timeout=WAIT).close()
    wait_until(lambda: not gs.netstat())


def test_warning_callback(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()
    gate = make_gate(handler)
    sock, cid = connect_client(gate, handler, clients)
    chunk = b"w" * 65000
    total = 0
    while not handler.of("warning"):
        assert gate.send(cid, chunk)
        total += len(chunk) + 2
        if total > 64 * 1024 * 1024:
            pytest.fail("no warning after 64 MiB")
        gevent.sleep(0)
    assert handler.of("warning")[0][2] >= 1024
    received = recv_exact(sock, total)
    assert len(received) == total
    warning = handler.next("warning", cid)
    while warning[2] != 0:
        warning = handler.next("warning", cid)
    assert warning == ("warning", cid, 0)


# ---------------------------------------------------------------------- abandon

def test_abandon_hands_the_socket_over_without_losing_bytes(make_gate: Any, clients: Clients) -> None:
    received: gevent.queue.Queue = gevent.queue.Queue()

    def agent(socket_id: int) -> None:
        gs.start(socket_id)
        received.put(gs.readall(socket_id))
        gs.close(socket_id)

    class Handing(Recorder):
        def connect(self, socket_id: int, address: str) -> None:
            super().connect(socket_id, address)
            assert self.gate is not None
            self.gate.abandon(socket_id)
            self.gate.openclient(socket_id)                 # no longer the gate's: ignored
            skynet.fork(agent, socket_id)

    handler = Handing(auto_open=False)
    gate = make_gate(handler, maxclient=1)
    for _ in range(2):                                      # not counted: both are admitted
        sock = clients.connect(gate)
        sock.sendall(pack(b"sent before the agent started") + b"raw tail")
        sock.shutdown(stdlib_socket.SHUT_WR)
        assert received.get(timeout=WAIT) == pack(b"sent before the agent started") + b"raw tail"
    assert gate.client_count == 0 and gate.refused == 0
    assert not handler.of("message") and not handler.of("disconnect")


def test_abandon_after_openclient_is_refused(make_gate: Any, clients: Clients) -> None:
    handler = Recorder()
    gate = make_gate(handler)
    _, cid = connect_client(gate, handler, clients)
    with pytest.raises(RuntimeError):
        gate.abandon(cid)
    gate.abandon(cid + 12345)                               # unknown: ignored


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Gate(Recorder(), "127.0.0.1", 0, maxclient=-1)
    with pytest.raises(ValueError):
        Gate(Recorder(), "127.0.0.1", 0, header=3)
    with pytest.raises(ValueError):
        Gate(Recorder(), "127.0.0.1", 0, max_packet=70000)
    with pytest.raises(RuntimeError):
        _ = Gate(Recorder(), "127.0.0.1", 0).address


def test_failing_open_releases_the_port(driver: Any) -> None:
    class Broken:
        def open(self) -> None:
            raise RuntimeError("config missing")

    gate = Gate(Broken(), "127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="config missing"):
        gate.start()
    wait_until(lambda: not [r for r in gs.netstat() if r.type == "LISTEN"])
    assert gate.listen_id is None
