"""gsocket.websocket over real loopback sockets, against an independent peer:
the ``websockets`` package's sync client and server, run in OS threads.

Server side: text, binary, 1 MiB, fragments, ping/pong, close codes both
ways, 1009 on oversize, 1002 on an unmasked client frame, abrupt disconnect,
400 without upgrade, 404 on another path, 408 for a slow upgrade; writes of
one turn in one send, a blocking handler's reply still sent. Client side:
websocket.connect against a websockets server (fragments, its pings, 1009),
a connect timeout; wss:// without TLS. Random bytes after the handshake: a
clean close, no error in the dispatcher.
"""

from __future__ import annotations

import gc
import logging
import socket as stdlib_socket
import struct
import threading

import gevent
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

from gsocket import http, websocket
from gsocket import socket as gs

from _ws_support import (
    WAIT, Recorder, WsServer, close_code_of, gevent_client, masked_frame, raw_handshake,
)
from _tls_support import make_certs
from helpers import InThread, recv_to_eof, set_linger_zero

pytestmark = pytest.mark.usefixtures("driver")

MiB = 1 << 20


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture):
    """No gsocket logger (the dispatcher's included) logs an ERROR."""
    caplog.set_level(logging.INFO, logger="gsocket")
    yield
    errors = [r for r in caplog.records if r.name.startswith("gsocket") and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def in_thread(fn, *args):
    return InThread(fn, *args).result(WAIT * 2)


# ---------------------------------------------------------------------- gsocket server, websockets client

def test_text_and_binary_echo():
    with WsServer(path="/ws") as server:
        def client():
            with ws_connect(server.url + "/ws", open_timeout=WAIT) as ws:
                ws.send("héllo")
                text = ws.recv(WAIT)
                ws.send(b"\x00\xff")
                data = ws.recv(WAIT)
            return text, data
        assert in_thread(client) == ("héllo", b"\x00\xff")
        server.wait_done()
    handler = server.handlers[0]
    assert server.results == [True]
    assert handler.of("message") == [("message", "héllo", "text"), ("message", b"\x00\xff", "binary")]
    assert handler.calls[0] == ("handshake", "/ws", "websocket")
    assert handler.calls[1] == ("connect",)
    assert handler.of("close") == [("close", 1000, "")]


def test_one_mebibyte_messages_both_ways():
    big_text = "é" * (MiB // 2)       # 1 MiB of UTF-8
    big_data = bytes(range(256)) * (MiB // 256)
    with WsServer() as server:
        def client():
            with ws_connect(server.url, max_size=None, open_timeout=WAIT) as ws:
                ws.send(big_data)
                back = ws.recv(WAIT)
                ws.send(big_text)
                return back, ws.recv(WAIT)
        back_data, back_text = in_thread(client)
        server.wait_done()
    assert back_data == big_data
    assert back_text == big_text
    assert [len(c[1]) for c in server.handlers[0].of("message")] == [MiB, MiB // 2]


def test_fragmented_messages_are_reassembled():
    with WsServer() as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                ws.send(["frag", "men", "ted"])
                text = ws.recv(WAIT)
                ws.send([b"\x01", b"", b"\x02\x03"])
                return text, ws.recv(WAIT)
        assert in_thread(client) == ("fragmented", b"\x01\x02\x03")
        server.wait_done()
    assert server.handlers[0].of("message") == [
        ("message", "fragmented", "text"), ("message", b"\x01\x02\x03", "binary")]


def test_ping_pong_both_ways():
    pinged = threading.Event()

    def serve(socket_id: int) -> None:
        assert websocket.ping(socket_id, b"from-server")
        assert websocket.read(socket_id, timeout=WAIT) == "done"
        assert websocket.read(socket_id, timeout=WAIT) is None

    with WsServer(handler=None, serve=serve) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                assert ws.ping(b"from-client").wait(WAIT)
                pinged.set()
                ws.send("done")
        in_thread(client)
        server.wait_done()
    assert pinged.is_set()

    with WsServer() as server:     # the handler sees pings and pongs
        def client2():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                assert ws.ping(b"abc").wait(WAIT)
                ws.send("x")
                ws.recv(WAIT)
        in_thread(client2)
        server.wait_done()
    assert server.handlers[0].of("ping") == [("ping", b"abc")]


def test_server_sees_pong_of_its_ping():
    class Pinger(Recorder):
        def connect(self, socket_id):
            super().connect(socket_id)
            websocket.ping(socket_id, b"p1")

        def pong(self, socket_id, data):
            super().pong(socket_id, data)
            websocket.close(socket_id, 1000, "got pong")

    with WsServer(handler=Pinger) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                with pytest.raises(ConnectionClosed):
                    ws.recv(WAIT)
                return ws.close_code, ws.close_reason
        assert in_thread(client) == (1000, "got pong")
        server.wait_done()
    assert server.handlers[0].of("pong") == [("pong", b"p1")]


def test_close_code_from_client():
    with WsServer() as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                ws.close(4001, "client says bye")
        in_thread(client)
        server.wait_done()
    assert server.handlers[0].of("close") == [("close", 4001, "client says bye")]


def test_close_code_from_server():
    def serve(socket_id: int) -> None:
        assert websocket.read(socket_id, timeout=WAIT) == "close me"
        websocket.close(socket_id, 4002, "server says bye")
        assert websocket.read(socket_id) is None
        assert not websocket.write(socket_id, "too late")

    with WsServer(handler=None, serve=serve) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                ws.send("close me")
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(WAIT)
                return caught.value.rcvd.code, caught.value.rcvd.reason
        assert in_thread(client) == (4002, "server says bye")
        server.wait_done()


def test_oversize_message_closes_with_1009():
    with WsServer(max_message=1000) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                ws.send(b"x" * 1000)          # exactly the limit: fine
                assert ws.recv(WAIT) == b"x" * 1000
                ws.send(["a" * 600, "b" * 600])   # fragments add up over it
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(WAIT)
                return caught.value.rcvd.code
        assert in_thread(client) == 1009
        server.wait_done()
    handler = server.handlers[0]
    assert handler.of("error") == [("error", 1009)]
    assert handler.of("close") == [("close", 1009, "message over 1000 bytes")]
    assert len(handler.of("message")) == 1


def test_unmasked_client_frame_closes_with_1002():
    with WsServer() as server:
        sock = gevent_client(server.port)
        try:
            assert raw_handshake(sock, server.port).startswith(b"HTTP/1.1 101 ")
            sock.sendall(b"\x81\x05hello")     # FIN + text, no mask bit
            frames = recv_to_eof(sock)
        finally:
            sock.close()
        server.wait_done()
    assert close_code_of(frames) == 1002
    handler = server.handlers[0]
    assert handler.of("error") == [("error", 1002)]
    assert handler.of("message") == []
    assert handler.of("close")[0][1] == 1002


def test_masked_raw_frames_and_close():
    with WsServer() as server:
        sock = gevent_client(server.port)
        try:
            raw_handshake(sock, server.port)
            sock.sendall(masked_frame(0x1, b"hi"))
            sock.sendall(masked_frame(0x8, struct.pack("!H", 4003) + b"raw"))
            frames = recv_to_eof(sock)
        finally:
            sock.close()
        server.wait_done()
    assert frames.startswith(b"\x81\x02hi")
    assert close_code_of(frames) == 4003
    assert server.handlers[0].of("close") == [("close", 4003, "raw")]


@pytest.mark.parametrize("reset", [False, True])
def test_abrupt_disconnect(reset):
    got = []

    def serve(socket_id: int) -> None:
        got.append(websocket.read(socket_id, timeout=WAIT))
        got.append(websocket.read(socket_id, timeout=WAIT))

    with WsServer(handler=None, serve=serve) as server:
        sock = gevent_client(server.port)
        raw_handshake(sock, server.port)
        sock.sendall(masked_frame(0x2, b"last words"))
        sock.sendall(masked_frame(0x1, b"half a mess", fin=False))
        gevent.sleep(0.05)
        if reset:
            set_linger_zero(sock)
        sock.close()
        server.wait_done()
    assert got == [b"last words", None]

    with WsServer() as server:      # handler mode: close(1006)
        sock = gevent_client(server.port)
        raw_handshake(sock, server.port)
        sock.close()
        server.wait_done()
    assert server.handlers[0].of("close") == [("close", 1006, "")]


def test_plain_http_get_gets_400_and_is_closed():
    with WsServer() as server:
        sock = gevent_client(server.port)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = recv_to_eof(sock)
        finally:
            sock.close()
        server.wait_done()
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert server.results == [False]
    assert server.handlers[0].calls == []


def test_garbage_request_gets_400():
    with WsServer() as server:
        sock = gevent_client(server.port)
        try:
            sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            reply = recv_to_eof(sock)
        finally:
            sock.close()
        server.wait_done()
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert server.results == [False]


def test_wrong_path_gets_404():
    with WsServer(path="/ws") as server:
        sock = gevent_client(server.port)
        try:
            reply = raw_handshake(sock, server.port, path="/other")
            rest = recv_to_eof(sock)
        finally:
            sock.close()
        server.wait_done()
    assert reply.startswith(b"HTTP/1.1 404 ")
    assert (reply + rest).endswith(b"404 Not Found\n")
    assert server.results == [False]


def test_handshake_callback_can_refuse():
    class Refuser(Recorder):
        def handshake(self, socket_id, headers, path):
            return False

    with WsServer(handler=Refuser) as server:
        def client():
            with pytest.raises(Exception) as caught:
                ws_connect(server.url, open_timeout=WAIT)
            return str(caught.value)
        assert "403" in in_thread(client)
        server.wait_done()
    assert server.results == [False]


def test_handler_exception_closes_with_1011():
    class Crasher(Recorder):
        def message(self, socket_id, data, kind):
            raise RuntimeError("boom")

    with WsServer(handler=Crasher) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                ws.send("x")
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(WAIT)
                return caught.value.rcvd.code
        logging.getLogger("gsocket.websocket").disabled = True   # the traceback is expected
        try:
            assert in_thread(client) == 1011
            server.wait_done()
        finally:
            logging.getLogger("gsocket.websocket").disabled = False


def test_addrinfo_and_read_timeout():
    seen = []

    def serve(socket_id: int) -> None:
        seen.append(websocket.addrinfo(socket_id))
        with pytest.raises(TimeoutError):
            websocket.read(socket_id, timeout=0.05)
        seen.append(websocket.read(socket_id, timeout=WAIT))
        seen.append(websocket.read(socket_id, timeout=WAIT))

    with WsServer(handler=None, serve=serve) as server:
        def client():
            with ws_connect(server.url, open_timeout=WAIT) as ws:
                local = "%s:%d" % ws.socket.getsockname()[:2]
                import time
                time.sleep(0.2)
                ws.send("late")
            return local
        local = in_thread(client)
        server.wait_done()
    assert seen == [local, "late", None]


def test_accept_request_routes_one_port():
    """A web server reads the request itself and hands /ws to accept_request."""
    results = []

    def serve(socket_id: int) -> None:
        gs.start(socket_id)
        request = http.read_request(socket_id)
        if request.path == "/ws":
            results.append(websocket.accept_request(socket_id, request, Recorder()))
        else:
            http.write_response(socket_id, 200, {"Content-Type": "text/plain"}, "page", request=request)
            results.append("page")

    listen_id = gs.listen("127.0.0.1", 0)
    port = gs.address(listen_id)[1]
    greenlets = []
    gs.start(listen_id, lambda socket_id, addr: greenlets.append(gevent.spawn(serve, socket_id)))
    try:
        sock = gevent_client(port)
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        page = recv_to_eof(sock)
        sock.close()

        def client():
            with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=WAIT) as ws:
                ws.send("routed")
                return ws.recv(WAIT)
        assert in_thread(client) == "routed"
        gevent.joinall(greenlets, timeout=WAIT)
    finally:
        gs.close(listen_id)
    assert page.startswith(b"HTTP/1.1 200 ") and page.endswith(b"page")
    assert results == ["page", True]


# ---------------------------------------------------------------------- gsocket client, websockets server

class ThreadServer:
    """A websockets sync server in an OS thread, echoing, or closing with
    4010 on the message "close-4010"; records the close code it saw."""

    def __init__(self) -> None:
        self.codes = []
        self.server = ws_serve(self.handle, "127.0.0.1", 0, max_size=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, ws) -> None:
        try:
            for message in ws:
                if message == "close-4010":
                    ws.close(4010, "as asked")
                    break
                if message == "fragments":             # one message in three frames
                    ws.send(["frag", "mént", "ed"])
                    ws.send([b"\x01", b"", b"\x02\x03"])
                elif message == "ping-me":             # answered by the client itself
                    ws.send("pong seen" if ws.ping(b"srv").wait(WAIT) else "no pong")
                elif message == "send-2k":
                    ws.send(b"x" * 2048)
                else:
                    ws.send(message)
        except ConnectionClosed:
            pass
        self.codes.append(ws.close_code)

    def close(self) -> None:
        self.server.shutdown()
        in_thread(self.thread.join, WAIT)
        gc.collect()   # serve_forever() leaves its selector (an epoll fd) to the GC


@pytest.fixture
def thread_server():
    server = ThreadServer()
    yield server
    server.close()


def test_client_against_websockets_server(thread_server):
    url = f"ws://127.0.0.1:{thread_server.port}/any?q=1"
    socket_id = websocket.connect(url, timeout=WAIT)
    try:
        assert websocket.addrinfo(socket_id) == f"127.0.0.1:{thread_server.port}"
        assert websocket.write(socket_id, "text")
        assert websocket.read(socket_id, timeout=WAIT) == "text"
        assert websocket.write(socket_id, b"\x00bin")
        assert websocket.read(socket_id, timeout=WAIT) == b"\x00bin"
        assert websocket.write(socket_id, "as bytes", kind="binary")
        assert websocket.read(socket_id, timeout=WAIT) == b"as bytes"
        big = b"\x07" * MiB
        assert websocket.write(socket_id, big)
        assert websocket.read(socket_id, timeout=WAIT) == big
        assert websocket.ping(socket_id, b"p")
    finally:
        websocket.close(socket_id, 4005, "client done")
    assert websocket.read(socket_id) is None
    gevent.sleep(0)
    wait_codes(thread_server, [4005])


def test_client_fragments_pings_and_oversize(thread_server):
    """The client side against the websockets server: fragmented messages
    reassembled, the server's ping answered without the caller's help, a
    message over the client's max_message closed with 1009."""
    socket_id = websocket.connect(f"ws://127.0.0.1:{thread_server.port}/", timeout=WAIT, max_message=1024)
    try:
        assert websocket.write(socket_id, "fragments")
        assert websocket.read(socket_id, timeout=WAIT) == "fragménted"
        assert websocket.read(socket_id, timeout=WAIT) == b"\x01\x02\x03"
        assert websocket.write(socket_id, "ping-me")
        assert websocket.read(socket_id, timeout=WAIT) == "pong seen"
        assert websocket.write(socket_id, "send-2k")
        assert websocket.read(socket_id, timeout=WAIT) is None
    finally:
        websocket.close(socket_id)
    wait_codes(thread_server, [1009])


def test_client_sees_server_close(thread_server):
    socket_id = websocket.connect(f"ws://127.0.0.1:{thread_server.port}/", timeout=WAIT)
    assert websocket.write(socket_id, "close-4010")
    assert websocket.read(socket_id, timeout=WAIT) is None
    assert not websocket.write(socket_id, "after")
    wait_codes(thread_server, [4010])


def test_client_refused_and_unreachable():
    with WsServer(path="/ws") as server:
        with pytest.raises(ConnectionError, match="404"):
            websocket.connect(server.url + "/nope", timeout=WAIT)
        server.wait_done()
    probe = stdlib_socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OSError):
        websocket.connect(f"ws://127.0.0.1:{port}/", timeout=WAIT)
    with pytest.raises(ValueError):
        websocket.connect("http://127.0.0.1:1/")


def test_timeouts_block_only_the_caller():
    """accept(timeout=): an upgrade request too slow to arrive gets 408 and
    accept returns False; connect(timeout=): a server that never answers the
    upgrade is a TimeoutError. Meanwhile other greenlets run on."""
    ticks = []

    def ticker() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.01)

    running = gevent.spawn(ticker)
    try:
        with WsServer(timeout=0.3) as server:
            sock = gevent_client(server.port)
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")   # never ends
                reply = recv_to_eof(sock)
            finally:
                sock.close()
            server.wait_done()
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert server.results == [False] and server.handlers[0].calls == []

        mute = stdlib_socket.socket()       # the kernel completes the TCP handshake; nobody answers
        try:
            mute.bind(("127.0.0.1", 0))
            mute.listen(4)
            before = len(ticks)
            with pytest.raises(TimeoutError):
                websocket.connect("ws://127.0.0.1:%d/" % mute.getsockname()[1], timeout=0.3)
            assert len(ticks) - before >= 5, "connect blocked the hub"
        finally:
            mute.close()
    finally:
        running.kill()


def test_wss_both_ways_over_gsocket_tls(tmp_path):
    """wss://: a gsocket WebSocket server on a TLS listener, talked to by
    gsocket's client and by the websockets package's (stdlib ssl)."""
    certs = make_certs(tmp_path)
    with WsServer(path="/ws", ssl_context=certs.server_context()) as server:
        assert server.url.startswith("wss://")
        socket_id = websocket.connect(server.url + "/ws", timeout=WAIT,
                                      ssl_context=certs.client_context())
        assert {row.id: row.type for row in gs.netstat()}[socket_id] == "TLS"
        websocket.write(socket_id, "secure round")
        assert websocket.read(socket_id, timeout=WAIT) == "secure round"
        websocket.close(socket_id, 4100, "done")

        def client():
            with ws_connect(server.url + "/ws", ssl=certs.client_context(),
                            open_timeout=WAIT) as ws:
                ws.send(b"\x00tls\xff")
                return ws.recv(WAIT)

        assert in_thread(client) == b"\x00tls\xff"
        server.wait_done(2)
    assert server.results == [True, True]
    with pytest.raises(TypeError):       # a context that is not one
        websocket.connect("ws://127.0.0.1:1/", timeout=WAIT, ssl_context=object())


def test_gsocket_client_and_server():
    with WsServer(path="/ws") as server:
        socket_id = websocket.connect(server.url + "/ws", timeout=WAIT)
        websocket.write(socket_id, "round")
        assert websocket.read(socket_id, timeout=WAIT) == "round"
        websocket.close(socket_id, 4100, "done")
        server.wait_done()
    assert server.handlers[0].of("close") == [("close", 4100, "done")]


def wait_codes(server: ThreadServer, codes) -> None:
    with gevent.Timeout(WAIT, AssertionError(f"server saw {server.codes}, not {codes}")):
        while server.codes != codes:
            gevent.sleep(0.01)


# ---------------------------------------------------------------------- random input

def test_random_bytes_after_handshake_close_cleanly():
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
    def random_input(chunks):
        with WsServer() as server:
            sock = gevent_client(server.port)
            try:
                raw_handshake(sock, server.port)
                try:
                    for chunk in chunks:
                        sock.sendall(chunk)
                    sock.shutdown(stdlib_socket.SHUT_WR)
                    recv_to_eof(sock)
                except (ConnectionResetError, BrokenPipeError):
                    pass
            finally:
                sock.close()
            server.wait_done()
        assert server.results == [True]
        closes = server.handlers[0].of("close")
        assert len(closes) == 1 and 1000 <= closes[0][1] < 5000
    random_input()
