"""gsocket.http over real loopback sockets: a small server of its own
(read_request / write_response / write_error on gsocket ids) and raw
clients that parse the replies by hand (independent of h11).

Edge cases: 431 for a head over max_header, 408 for a request too slow
(even one trickling in a byte at a time), 413 for a body over max_body
(declared or chunked), keep-alive (two requests on one connection, also
pipelined), HEAD without a body, malformed requests -> 400 and closed, a
peer leaving mid-request, HTTP/1.0 closes after its answer."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import gevent
import gevent.socket
import pytest

from gsocket import http
from gsocket import socket as gs

from helpers import recv_to_end

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


class Server:
    """Serves each connection in a greenlet: requests in a keep-alive loop,
    each answered with ``METHOD PATH BODYLENGTH``; an HttpError is answered
    with write_error. ``requests`` and ``errors`` (statuses) record it."""

    def __init__(self, **read_kwargs: Any) -> None:
        self.read_kwargs = read_kwargs
        self.requests: List[http.HttpRequest] = []
        self.errors: List[int] = []
        self.ends: List[str] = []           # how each connection ended
        self.greenlets: List[gevent.Greenlet] = []
        self.listen_id = gs.listen("127.0.0.1", 0)
        self.port = gs.address(self.listen_id)[1]
        gs.start(self.listen_id, lambda id, addr: self.greenlets.append(gevent.spawn(self._serve, id)))

    def _serve(self, socket_id: int) -> None:
        gs.start(socket_id)
        request: Optional[http.HttpRequest] = None
        while True:
            try:
                request = http.read_request(socket_id, previous=request, **self.read_kwargs)
            except http.HttpError as exc:
                self.errors.append(exc.status)
                self.ends.append(f"error {exc.status}")
                http.write_error(socket_id, exc.status, exc.message)
                return
            if request is None:
                self.ends.append("peer left")
                gs.close(socket_id)
                return
            self.requests.append(request)
            body = f"{request.method} {request.path} {len(request.body)}"
            if not http.write_response(socket_id, 200, {"Content-Type": "text/plain"}, body,
                                       request=request, close=False):
                self.ends.append("closed after response")
                return

    def wait_ends(self, count: int) -> None:
        with gevent.Timeout(WAIT, AssertionError(f"{count} connections not ended: {self.ends}")):
            while len(self.ends) < count:
                gevent.sleep(0.005)

    def close(self) -> None:
        gs.close(self.listen_id)
        done = gevent.joinall(self.greenlets, timeout=WAIT)
        assert len(done) == len(self.greenlets), "a connection greenlet did not finish"
        for greenlet in self.greenlets:
            if greenlet.exception is not None:
                raise greenlet.exception


@pytest.fixture
def serve(driver) -> Iterator:
    servers: List[Server] = []

    def start(**read_kwargs: Any) -> Server:
        server = Server(**read_kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Client:
    """A raw gevent socket; responses parsed by hand (status line, headers,
    Content-Length body)."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"EOF; buffered {self.buffer[:200]!r}"
        self.buffer += chunk

    def response(self, head_only: bool = False) -> Tuple[str, Dict[str, str], bytes]:
        """(status line, headers with lower-case names, body) of the next
        response; ``head_only``: a response to HEAD (no body follows)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def rest(self) -> Tuple[bytes, Optional[str]]:
        """Everything until the server closes: (bytes, None or 'reset')."""
        data, how = recv_to_end(self.sock)
        return self.buffer + data, how

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients() -> Iterator:
    made: List[Client] = []

    def connect(port: int) -> Client:
        client = Client(port)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def get(path: str = "/", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def test_keep_alive_two_requests_on_one_connection(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(get("/one?x=1"))
    status, headers, body = client.response()
    assert status == "HTTP/1.1 200 OK"
    assert body == b"GET /one 0" and headers["content-length"] == "10"
    assert "connection" not in headers                  # kept alive
    client.send(get("/two", "Content-Length: 5\r\n", method="POST") + b"hello")
    status, headers, body = client.response()
    assert status == "HTTP/1.1 200 OK" and body == b"POST /two 5"
    assert [r.path for r in server.requests] == ["/one", "/two"]
    assert server.requests[0].query == "x=1" and server.requests[1].body == b"hello"
    assert server.ends == []                            # the connection is still open
    client.close()
    server.wait_ends(1)
    assert server.ends == ["peer left"]


def test_pipelined_requests_answered_in_order(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(get("/a") + get("/b", "Content-Length: 3\r\n", method="PUT") + b"xyz" + get("/c"))
    assert [client.response()[2] for _ in range(3)] == [b"GET /a 0", b"PUT /b 3", b"GET /c 0"]


def test_head_has_length_but_no_body(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(get("/page", method="HEAD"))
    status, headers, body = client.response(head_only=True)
    assert status == "HTTP/1.1 200 OK" and body == b""
    assert headers["content-length"] == str(len(b"HEAD /page 0"))
    client.send(get("/after"))                          # no stray body bytes before this answer
    assert client.response() == ("HTTP/1.1 200 OK", {"content-type": "text/plain", "content-length": "12"},
                                 b"GET /after 0")


def test_oversized_head_gets_431_and_is_closed(serve, clients) -> None:
    server = serve(max_header=4096)
    one = clients(server.port)
    one.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000)   # not even finished
    status, headers, body = one.response()
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["connection"] == "close" and body.startswith(b"431 ")
    assert one.rest() == (b"", None)
    many = clients(server.port)                          # many small headers add up
    many.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 60) for i in range(80))
              + b"\r\n")
    assert many.response()[0].startswith("HTTP/1.1 431 ")
    assert many.rest() == (b"", None)
    fits = clients(server.port)                          # just under the limit is served
    fits.send(get("/", "X-Fits: " + "b" * 3000 + "\r\n"))
    assert fits.response()[0] == "HTTP/1.1 200 OK"
    assert server.errors == [431, 431]


def test_slow_request_gets_408(serve, clients) -> None:
    server = serve(timeout=0.5)
    idle = clients(server.port)                          # says nothing at all
    status, headers, _ = idle.response()
    assert status == "HTTP/1.1 408 Request Timeout" and headers["connection"] == "close"
    assert idle.rest() == (b"", None)
    # The deadline is for the whole request: one trickling in a byte every
    # 50 ms (it would take 15 s) is answered 408 all the same.
    trickle = clients(server.port)
    request = get("/slow", "X-Pad: " + "p" * 300 + "\r\n")

    def dribble() -> None:
        try:
            for byte in request:
                trickle.send(bytes([byte]))
                gevent.sleep(0.05)
        except OSError:           # the server closed: stop
            pass

    sender = gevent.spawn(dribble)
    try:
        assert trickle.response()[0] == "HTTP/1.1 408 Request Timeout"
    finally:
        sender.kill()
    assert server.errors == [408, 408] and server.requests == []


def test_oversized_body_gets_413(serve, clients) -> None:
    server = serve(max_body=1000)
    declared = clients(server.port)                      # refused on the header alone
    declared.send(get("/up", "Content-Length: 2000000\r\n", method="POST"))
    status, headers, body = declared.response()
    assert status in ("HTTP/1.1 413 Content Too Large", "HTTP/1.1 413 Request Entity Too Large")
    assert headers["connection"] == "close" and body.startswith(b"413 ")
    assert declared.rest()[0] == b""
    chunked = clients(server.port)                       # no length: counted as it arrives
    chunked.send(get("/up", "Transfer-Encoding: chunked\r\n", method="POST"))
    for _ in range(3):
        chunked.send(b"200\r\n" + b"z" * 0x200 + b"\r\n")
    assert chunked.response()[0].startswith("HTTP/1.1 413 ")
    exact = clients(server.port)
    exact.send(get("/up", "Content-Length: 1000\r\n", method="POST") + b"q" * 1000)
    assert exact.response()[2] == b"POST /up 1000"
    assert server.errors == [413, 413]


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",                                       # HTTP/1.1 needs Host
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",                           # a space in the target
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",   # TLS hello
], ids=["not-http", "bad-header", "no-host", "bad-length", "two-lengths", "space-in-target", "tls"])
def test_malformed_request_gets_400_and_is_closed(serve, clients, garbage: bytes) -> None:
    server = serve()
    client = clients(server.port)
    client.send(garbage)
    status, headers, body = client.response()
    assert status.startswith("HTTP/1.1 400 "), status
    assert headers["connection"] == "close" and body.startswith(b"400 ")
    assert client.rest() == (b"", None)
    assert server.errors == [400] and server.requests == []


def test_400_after_a_good_request_on_the_same_connection(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(get("/fine") + b"GARBAGE\r\n\r\n")
    assert client.response()[2] == b"GET /fine 0"
    assert client.response()[0].startswith("HTTP/1.1 400 ")
    assert client.rest() == (b"", None)


def test_peer_leaving_mid_request_is_not_answered(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(b"GET /half HTTP/1.1\r\nHo")
    client.sock.shutdown(gevent.socket.SHUT_WR)
    assert client.rest() == (b"", None)
    server.wait_ends(1)
    assert server.ends == ["peer left"] and server.errors == []


def test_http10_and_connection_close_end_after_the_answer(serve, clients) -> None:
    server = serve()
    old = clients(server.port)
    old.send(b"GET /old HTTP/1.0\r\n\r\n")
    status, headers, body = old.response()
    assert status == "HTTP/1.1 200 OK" and body == b"GET /old 0"
    assert old.rest() == (b"", None)
    done = clients(server.port)
    done.send(get("/bye", "Connection: close\r\n"))
    status, headers, body = done.response()
    assert headers["connection"] == "close" and body == b"GET /bye 0"
    assert done.rest() == (b"", None)
    server.wait_ends(2)
    assert server.ends == ["closed after response", "closed after response"]


def test_reason_phrases_default_to_the_standard_ones(serve, clients) -> None:
    server = serve()
    client = clients(server.port)
    client.send(get("/x", "Expect: nothing-known\r\n"))
    assert client.response()[0] == "HTTP/1.1 200 OK"
    assert http._phrase(404, "") == "Not Found" and http._phrase(599, "Error") == "Error"
