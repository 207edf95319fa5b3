"""TLS on both layers, over real loopback sockets with certificates made at
test time: stdlib ``ssl`` peers (client and server, in OS threads), gsocket
on both ends, and the ``openssl s_client`` binary. Handshake before OPEN,
failed handshakes (bad certificate, plaintext peer, garbage, early EOF) as
ERROR while the listener keeps serving, close_notify before FIN, MiB echoes
intact both ways, and the write rules (priorities, WARNING, no loss) as
over TCP."""

from __future__ import annotations

import shutil
import socket as stdlib_socket
import ssl

import gevent
import gevent.queue
import gevent.subprocess
import pytest

from gsocket import socket as gs
from gsocket.events import (
    SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR, SOCKET_OPEN, SOCKET_WARNING,
)

pytest_plugins = ["helpers"]                # fixtures: events, closer

from _tls_support import Certs, make_certs  # noqa: E402
from helpers import (  # noqa: E402
    InThread, accept, info_row, pattern, recv_exact, recv_to_end,
    runs, thread_client, wait_until,
)

KIB = 1024
MIB = 1024 * 1024
SMALL_RCVBUF = 16 * KIB


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("pki"))


def tls_listen(server, events, certs, trusted=True):
    """A started TLS listener: (listen id, port)."""
    listen_id = server.listen("127.0.0.1", 0, ssl_context=certs.server_context(trusted))
    port = server.address(listen_id)[1]
    server.start(listen_id)
    events.expect(SOCKET_OPEN, listen_id, data="start")
    return listen_id, port


def connect_tls(port, context, rcvbuf=None, hostname="localhost"):
    """A blocking stdlib TLS client (call it from a thread: the handshake
    needs the hub). Ragged EOFs raise, so a clean close is close_notify."""
    raw = thread_client(port, rcvbuf=rcvbuf)
    try:
        return context.wrap_socket(raw, server_hostname=hostname, suppress_ragged_eofs=False)
    except BaseException:
        raw.close()
        raise


def tls_pair(server, events, closer, certs, rcvbuf=None):
    """(connection id, stdlib TLS client, listen id), the handshake done."""
    listen_id, port = tls_listen(server, events, certs)
    handshake = InThread(connect_tls, port, certs.client_context(), rcvbuf)
    socket_id = accept(events, listen_id).ud
    assert info_row(server, socket_id).type == "TLS"
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    client = closer(handshake.result())
    return socket_id, client, listen_id


def recv_until_close_notify(sock):
    """Everything until the peer's close_notify (SSLEOFError if it never comes)."""
    parts = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def echo_until_close(server, events, socket_id, nbytes):
    """Echo DATA of ``socket_id`` back until nbytes went through."""
    got = 0
    while got < nbytes:
        message = events.next()
        if message.id == socket_id and message.type == SOCKET_DATA:
            assert server.send(socket_id, message.data)
            got += message.ud
        else:
            assert message.type == SOCKET_WARNING, message
    return got


# ---------------------------------------------------------------- server side

def test_echo_mebibytes_to_a_stdlib_client_then_close_notify(server, events, closer, certs):
    socket_id, client, listen_id = tls_pair(server, events, closer, certs)
    payload = pattern(1, 4 * MIB)

    def talk():   # one thread: an SSL object must not be used by two at once
        echoed = []
        for start in range(0, len(payload), 512 * KIB):
            piece = payload[start:start + 512 * KIB]
            client.sendall(piece)
            echoed.append(recv_exact(client, len(piece)))
        return b"".join(echoed), recv_until_close_notify(client)

    peer = InThread(talk)
    assert echo_until_close(server, events, socket_id, len(payload)) == len(payload)
    rows = {row.id: row for row in server.info()}
    assert rows[listen_id].type == "LISTEN" and rows[socket_id].type == "TLS"
    assert rows[socket_id].read == len(payload)          # plaintext bytes
    server.send(socket_id, b"last words")
    server.close(socket_id)
    events.wait_for(SOCKET_CLOSE, socket_id)
    echoed, tail = peer.result(20)
    assert echoed == payload
    assert tail == b"last words"          # then close_notify: no SSLEOFError
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")


def test_peer_close_notify_is_close_and_ours_answers_it(server, events, closer, certs):
    socket_id, client, _ = tls_pair(server, events, closer, certs)
    unwrapped = InThread(client.unwrap)      # sends close_notify, waits for ours
    events.expect(SOCKET_CLOSE, socket_id)
    server.close(socket_id)
    plain = closer(unwrapped.result())       # ours arrived: a plain socket again
    assert plain.recv(10) == b""             # and then the FIN
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")


def test_data_sent_before_start_waits_for_the_handshake(server, events, closer, certs):
    listen_id, port = tls_listen(server, events, certs)
    handshake = InThread(connect_tls, port, certs.client_context())
    socket_id = accept(events, listen_id).ud
    assert server.send(socket_id, b"queued before start|")
    assert server.send_lowpriority(socket_id, b"low|")
    assert info_row(server, socket_id).wbuffer == len(b"queued before start|low|")
    server.start(socket_id)
    events.expect(SOCKET_OPEN, socket_id, data="start")
    client = closer(handshake.result())
    server.send(socket_id, b"after")
    server.close(socket_id)
    assert InThread(recv_until_close_notify, client).result() == b"queued before start|low|after"


def test_close_before_the_handshake_still_delivers_what_was_sent(server, events, closer, certs):
    listen_id, port = tls_listen(server, events, certs)
    handshake = InThread(connect_tls, port, certs.client_context())
    socket_id = accept(events, listen_id).ud
    server.send(socket_id, b"sent, then closed at once")
    server.close(socket_id)
    events.expect(SOCKET_CLOSE, socket_id)
    client = closer(handshake.result())
    assert InThread(recv_until_close_notify, client).result() == b"sent, then closed at once"
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")
    assert events.quiet(0.05) == []


# ---------------------------------------------------------------- failed handshakes

def test_untrusted_certificate_is_an_error_and_the_listener_keeps_serving(server, events, closer,
                                                                         certs):
    bad_id, bad_port = tls_listen(server, events, certs, trusted=False)
    client_id = server.connect("127.0.0.1", bad_port, ssl_context=certs.client_context(),
                               server_hostname="localhost")
    accepted = accept(events, bad_id).ud
    server.start(accepted)
    errors = {}
    while len(errors) < 2:
        message = events.next()
        assert message.type == SOCKET_ERROR, message      # no OPEN, no CLOSE
        errors[message.id] = message.data
    assert "certificate verify failed" in errors[client_id]
    assert "alert" in errors[accepted] or "unknown ca" in errors[accepted], errors
    assert [row.id for row in server.info()] == [bad_id]
    # the same listener serves the next client, trusting or not
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    handshake = InThread(connect_tls, bad_port, context)
    good = accept(events, bad_id).ud
    server.start(good)
    events.expect(SOCKET_OPEN, good, data="start")
    client = closer(handshake.result())
    client.sendall(b"still serving")
    assert events.data(good, 13) == b"still serving"


def test_wrong_host_name_fails_the_handshake(server, events, certs):
    listen_id, port = tls_listen(server, events, certs)
    client_id = server.connect("127.0.0.1", port, ssl_context=certs.client_context(),
                               server_hostname="example.org")
    server.start(accept(events, listen_id).ud)
    error = events.wait_for(SOCKET_ERROR, client_id)
    assert "Hostname mismatch" in error.data or "certificate verify failed" in error.data


@pytest.mark.parametrize("first_bytes", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",             # a plaintext client
    pattern(7, 3000),                                          # garbage
    b"",                                                       # EOF before a byte
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",           # a torn ClientHello, then EOF
], ids=["plaintext", "garbage", "eof", "torn-hello"])
def test_non_tls_peer_is_closed_cleanly(server, events, closer, certs, first_bytes):
    listen_id, port = tls_listen(server, events, certs)
    raw = closer(thread_client(port))
    socket_id = accept(events, listen_id).ud
    server.start(socket_id)

    def talk():
        if first_bytes:
            raw.sendall(first_bytes)
        if first_bytes.startswith(b"\x16") or not first_bytes:
            raw.shutdown(stdlib_socket.SHUT_WR)
        return recv_to_end(raw)

    peer = InThread(talk)
    error = events.expect(SOCKET_ERROR, socket_id)
    assert error.data.startswith("TLS handshake failed") or "SSL" in error.data, error.data
    _, how = peer.result()
    assert how is None                     # FIN, not RST
    assert [row.id for row in server.info()] == [listen_id]
    # and the listener keeps serving TLS
    handshake = InThread(connect_tls, port, certs.client_context())
    good = accept(events, listen_id).ud
    server.start(good)
    events.expect(SOCKET_OPEN, good, data="start")
    closer(handshake.result()).sendall(b"ok")
    assert events.data(good, 2) == b"ok"


def test_stalled_handshakes_do_not_hold_anyone_up(server, events, closer, certs):
    listen_id, port = tls_listen(server, events, certs)
    stalled = []
    for first in (b"", b"\x16\x03\x01"):            # silent; a ClientHello that stops
        raw = closer(thread_client(port))
        if first:
            raw.sendall(first)
        stalled.append(accept(events, listen_id).ud)
        server.start(stalled[-1])
    socket_id, client, _ = tls_pair_on(server, events, closer, certs, listen_id, port)
    peer = InThread(lambda: (client.sendall(b"ping"), recv_exact(client, 4))[1])
    assert events.data(socket_id, 4) == b"ping"
    server.send(socket_id, b"pong")
    assert peer.result() == b"pong"
    rows = {row.id: row for row in server.info()}
    assert all(rows[i].type == "TLS" for i in stalled)


def tls_pair_on(server, events, closer, certs, listen_id, port):
    handshake = InThread(connect_tls, port, certs.client_context())
    socket_id = accept(events, listen_id).ud
    server.start(socket_id)
    events.wait_for(SOCKET_OPEN, socket_id)
    return socket_id, closer(handshake.result()), listen_id


# ---------------------------------------------------------------- client side

class StdlibTlsEcho:
    """A stdlib TLS echo server in an OS thread: one connection, echoes
    until our close_notify, reports whether it came, then closes."""

    def __init__(self, certs: Certs) -> None:
        self.context = certs.server_context()
        self.listener = stdlib_socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.echoed = 0
        self.thread = InThread(self.serve)

    def serve(self) -> str:
        self.listener.settimeout(20)
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False) as conn:
            conn.settimeout(20)
            try:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return "close_notify"
                    conn.sendall(chunk)
                    self.echoed += len(chunk)
            except ssl.SSLEOFError:
                return "ragged EOF"

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("how", ["connect", "block_connect"])
def test_client_side_echo_with_a_stdlib_server(server, events, closer, certs, how):
    peer = closer(StdlibTlsEcho(certs))
    context = certs.client_context()
    if how == "connect":
        socket_id = server.connect("localhost", peer.port, ssl_context=context)
    else:
        socket_id = server.block_connect("127.0.0.1", peer.port, ssl_context=context,
                                         server_hostname="localhost")
    payload = pattern(2, 3 * MIB)
    assert server.send(socket_id, payload)               # queued until the handshake is done
    opened = events.wait_for(SOCKET_OPEN, socket_id)     # after WARNING 3072
    assert opened.data.endswith(f":{peer.port}")
    assert info_row(server, socket_id).type == "TLS"
    assert events.data(socket_id, len(payload)) == payload
    server.close(socket_id)
    assert peer.thread.result(20) == "close_notify"
    wait_until(lambda: info_row(server, socket_id) is None, what="fd closed")


def test_block_connect_to_an_untrusted_server_raises(server, events, certs):
    listen_id, port = tls_listen(server, events, certs, trusted=False)

    def server_side():
        accepted = accept(events, listen_id).ud
        server.start(accepted)
        return events.wait_for(SOCKET_ERROR, accepted), accepted

    side = gevent.spawn(server_side)
    with pytest.raises(ssl.SSLCertVerificationError):
        server.block_connect("127.0.0.1", port, ssl_context=certs.client_context(),
                             server_hostname="localhost")
    error, accepted = side.get(timeout=10)             # the server side's handshake failed
    assert error.id == accepted
    assert events.quiet(0.05) == []                     # nothing for the client id
    assert [row.id for row in server.info()] == [listen_id]


def test_block_connect_gives_up_when_the_server_is_released(server, closer):
    silent = closer(stdlib_socket.create_server(("127.0.0.1", 0)))   # accepts, never speaks TLS
    port = silent.getsockname()[1]
    connecting = gevent.spawn(server.block_connect, "127.0.0.1", port,
                              ssl_context=ssl.create_default_context())
    wait_until(lambda: server.info(), what="TCP connected, handshake waiting")
    assert [row.type for row in server.info()] == ["TLS"]
    server.release()
    with pytest.raises(ConnectionAbortedError):
        connecting.get(timeout=5)


@pytest.mark.usefixtures("driver")
def test_socket_open_timeout_during_the_handshake(closer):
    silent = closer(stdlib_socket.create_server(("127.0.0.1", 0)))
    port = silent.getsockname()[1]
    with pytest.raises(TimeoutError):
        gs.open("127.0.0.1", port, ssl_context=ssl.create_default_context(), timeout=0.2)
    assert gs.netstat() == []


def test_bad_tls_arguments(server):
    with pytest.raises(TypeError):
        server.listen("127.0.0.1", 0, ssl_context="not a context")
    with pytest.raises(TypeError):
        server.connect("127.0.0.1", 1, ssl_context=object())
    with pytest.raises(ValueError):
        server.connect("127.0.0.1", 1, server_hostname="localhost")
    assert server.info() == []


# ---------------------------------------------------------------- write rules over TLS

def fill_kernel(server, socket_id, chunk=b"A" * 65536, minimum=256 * KIB):
    total = 0
    while info_row(server, socket_id).wbuffer < minimum:
        assert server.send(socket_id, chunk) is True
        total += len(chunk)
        assert total < 64 * MIB
    return total


def test_high_queue_goes_before_low_queue(server, events, closer, certs):
    socket_id, client, _ = tls_pair(server, events, closer, certs, rcvbuf=SMALL_RCVBUF)
    a_len = fill_kernel(server, socket_id)
    server.send(socket_id, b"B" * 1000)
    server.send_lowpriority(socket_id, b"L" * 100000)
    server.send(socket_id, b"H" * 1000)
    server.close(socket_id)
    received = InThread(recv_until_close_notify, client).result(20)
    assert runs(received) == [(ord("A"), a_len), (ord("B"), 1000), (ord("H"), 1000),
                              (ord("L"), 100000)]


def test_partly_written_low_buffer_finishes_before_later_high(server, events, closer, certs):
    socket_id, client, _ = tls_pair(server, events, closer, certs, rcvbuf=SMALL_RCVBUF)
    a_len = fill_kernel(server, socket_id)
    low = b"L" * (12 * MIB)
    server.send_lowpriority(socket_id, low)
    assert InThread(recv_exact, client, a_len).result(20) == b"A" * a_len
    wait_until(lambda: info_row(server, socket_id).write > a_len, what="low buffer started")
    row = info_row(server, socket_id)
    assert row.write < a_len + len(low) and row.wbuffer > 0, "the low buffer must be partly out"
    server.send(socket_id, b"H" * 3000)
    server.close(socket_id)
    rest = InThread(recv_until_close_notify, client).result(20)
    assert runs(rest) == [(ord("L"), len(low)), (ord("H"), 3000)]


def test_warning_thresholds_and_drained_as_over_tcp(server, events, closer, certs):
    socket_id, client, _ = tls_pair(server, events, closer, certs, rcvbuf=SMALL_RCVBUF)
    chunk = pattern(12, 64 * KIB)
    for _ in range(160):                       # 10 MiB, no yield in between
        assert server.send(socket_id, chunk)
    pending_kib = info_row(server, socket_id).wbuffer / KIB
    assert pending_kib > 4 * 1024
    got = [m.ud for m in events.quiet(0.1) if m.type == SOCKET_WARNING]
    thresholds = [1024 << k for k in range(20) if (1024 << k) <= pending_kib]
    assert len(got) == len(thresholds), (got, pending_kib)
    for ud, threshold in zip(got, thresholds):
        assert threshold <= ud <= threshold + 64
    assert InThread(recv_exact, client, 160 * len(chunk)).result(25) == chunk * 160
    assert events.wait_for(SOCKET_WARNING, socket_id).ud == 0
    assert info_row(server, socket_id).wbuffer == 0
    assert info_row(server, socket_id).write == 160 * len(chunk)


# ---------------------------------------------------------------- gsocket.socket, both ends

@pytest.mark.usefixtures("driver")
def test_socket_layer_tls_on_both_ends(certs):
    listen_id = gs.listen("127.0.0.1", 0, ssl_context=certs.server_context())
    port = gs.address(listen_id)[1]
    served = []

    def handle(socket_id, address):
        gs.start(socket_id)
        line = gs.readline(socket_id)
        served.append(line)
        gs.write(socket_id, line.upper() + b"\n")
        gs.write(socket_id, gs.read(socket_id, 2 * MIB))
        gs.close(socket_id)

    gs.start(listen_id, lambda i, a: gevent.spawn(handle, i, a))
    client = gs.open("127.0.0.1", port, ssl_context=certs.client_context(),
                     server_hostname="localhost")
    assert {row.id: row.type for row in gs.netstat()}[client] == "TLS"
    assert gs.write(client, b"hello tls\n")
    assert gs.readline(client) == b"HELLO TLS"
    big = pattern(3, 2 * MIB)
    assert gs.write(client, big)
    assert gs.read(client, len(big)) == big
    assert gs.readall(client) == b""           # the server closed (close_notify, FIN)
    gs.close(client)
    assert served == [b"hello tls"]
    gs.close(listen_id)


@pytest.mark.usefixtures("driver")
def test_socket_open_with_a_bad_certificate_raises(certs):
    listen_id = gs.listen("127.0.0.1", 0, ssl_context=certs.server_context(trusted=False))
    port = gs.address(listen_id)[1]
    gs.start(listen_id, lambda i, a: gs.start(i))
    with pytest.raises(ssl.SSLCertVerificationError):
        gs.open("127.0.0.1", port, ssl_context=certs.client_context(), server_hostname="localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        gs.open(f"127.0.0.1:{port}", ssl_context=ssl.create_default_context(), timeout=5)
    wait_until(lambda: [row.id for row in gs.netstat()] == [listen_id], what="failed ones closed")
    gs.close(listen_id)


# ---------------------------------------------------------------- a real binary: openssl s_client

def test_openssl_s_client_talks_to_a_gsocket_server(server, events, certs):
    assert shutil.which("openssl"), "the openssl binary is needed (.ci/run installs it)"
    listen_id, port = tls_listen(server, events, certs)
    client = gevent.subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(certs.ca),
         "-verify_return_error", "-verify_hostname", "localhost", "-quiet"],
        stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE,
        stderr=gevent.subprocess.PIPE)
    try:
        socket_id = accept(events, listen_id).ud
        server.start(socket_id)
        events.expect(SOCKET_OPEN, socket_id, data="start")
        client.stdin.write(b"hello from s_client\n")
        client.stdin.flush()
        assert events.data(socket_id, 20) == b"hello from s_client\n"
        server.send(socket_id, b"hello from gsocket\n")
        assert client.stdout.readline() == b"hello from gsocket\n"
        server.close(socket_id)                   # close_notify: s_client ends by itself
        assert client.wait(timeout=10) == 0
        stderr = client.stderr.read().decode(errors="replace")
        assert "verify return:1" in stderr and "error" not in stderr.lower(), stderr
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for pipe in (client.stdin, client.stdout, client.stderr):
            pipe.close()


# ---------------------------------------------------------------- issue 14's other parts over TLS

def test_shutdown_write_sends_close_notify_then_fin_and_reading_goes_on(server, events, closer,
                                                                       certs):
    socket_id, client, _ = tls_pair(server, events, closer, certs, rcvbuf=SMALL_RCVBUF)
    payload = pattern(4, 2 * MIB)
    server.send(socket_id, payload)          # most of it queued: the FIN waits for it
    server.shutdown_write(socket_id)
    assert server.send(socket_id, b"refused") is False

    def peer():
        received = recv_until_close_notify(client)     # close_notify, no SSLEOFError
        client.sendall(b"the peer still talks")
        return received

    assert InThread(peer).result(20) == payload
    assert events.data(socket_id, 20) == b"the peer still talks"
    server.close(socket_id)


@pytest.mark.usefixtures("driver")
def test_drain_waits_for_the_tls_peer(certs):
    listen_id = gs.listen("127.0.0.1", 0, ssl_context=certs.server_context())
    port = gs.address(listen_id)[1]
    accepted = gevent.queue.Queue()
    gs.start(listen_id, lambda i, _: accepted.put(i))
    handshake = InThread(connect_tls, port, certs.client_context(), SMALL_RCVBUF)
    socket_id = accepted.get(timeout=5)
    gs.start(socket_id)
    client = handshake.result()
    try:
        chunk = pattern(5, 256 * KIB)
        for _ in range(16):
            assert gs.write(socket_id, chunk)
        with pytest.raises(TimeoutError):
            gs.drain(socket_id, below=64 * KIB, timeout=0.2)   # nobody reads yet
        reader = InThread(recv_exact, client, 16 * len(chunk))
        assert gs.drain(socket_id, below=0, timeout=20) is True
        assert {row.id: row.wbuffer for row in gs.netstat()}[socket_id] == 0
        assert reader.result(20) == chunk * 16
    finally:
        client.close()
        gs.close(socket_id)
        gs.close(listen_id)


@pytest.mark.usefixtures("driver")
def test_serve_with_tls_runs_handlers_only_for_finished_handshakes(certs, caplog):
    import gsocket

    handled = []

    def handler(conn):
        handled.append(gs.netstat())
        line = conn.readline()
        conn.write(b"tls says " + line + b"\n")

    listen_id = gsocket.serve(handler, "127.0.0.1", 0, ssl_context=certs.server_context())
    port = gs.address(listen_id)[1]
    try:
        # a plaintext client: closed, and no handler ran for it
        raw = thread_client(port)
        try:
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert InThread(recv_to_end, raw).result()[1] is None
        finally:
            raw.close()
        assert handled == []
        client = gs.open("127.0.0.1", port, ssl_context=certs.client_context(),
                         server_hostname="localhost")
        gs.write(client, b"hello\n")
        assert gs.readline(client) == b"tls says hello"
        assert gs.readall(client) == b""
        gs.close(client)
        assert len(handled) == 1
        assert not [r for r in caplog.records if r.exc_info], "no handler failed"
    finally:
        gs.stop(listen_id, grace=1)


@pytest.mark.usefixtures("driver")
def test_tls_over_a_unix_socket(certs, tmp_path):
    path = f"unix:{tmp_path}/tls.sock"
    listen_id = gs.listen(path, ssl_context=certs.server_context())

    def handle(socket_id, _):
        gs.start(socket_id)
        gs.write(socket_id, gs.readline(socket_id) + b" over unix\n")
        gs.close(socket_id)

    gs.start(listen_id, lambda i, a: gevent.spawn(handle, i, a))
    client = gs.open(path, ssl_context=certs.client_context(), server_hostname="localhost")
    assert {row.id: row.type for row in gs.netstat()}[client] == "TLS"
    gs.write(client, b"tls\n")
    assert gs.readline(client) == b"tls over unix"
    gs.close(client)
    gs.close(listen_id)


def test_importing_gsocket_leaves_ssl_unimported():
    # ssl is imported only when TLS is used, so that an application can
    # still monkey-patch it after importing gsocket.
    import subprocess
    import sys
    code = ("import sys, gsocket, gsocket.server, gsocket.socket, gsocket.skynet, gsocket.serving;"
            "print('ssl' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "False"
