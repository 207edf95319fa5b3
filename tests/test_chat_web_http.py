"""The chat's browser door, HTTP side: the routing without sockets
(WebSite), then the real door over loopback with an h11 client on a plain
socket: static files, content types, caching, keep-alive, 404, 405, 400."""

from __future__ import annotations

import socket as stdlib_socket
from typing import Iterator, List, Optional, Tuple

import gevent.socket
import h11
import pytest

from chat_helpers import free_port
from gsocket.chat.server import ChatServer
from gsocket.chat.web_site import WebSite

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------- sans-I/O routing

def test_shipped_page_is_package_data() -> None:
    files = WebSite.shipped_files()
    assert {"index.html", "chat.js", "chat.css"} <= set(files)
    page = files["index.html"].decode()
    assert 'src="chat.js"' in page and 'href="chat.css"' in page
    for name, body in files.items():                                # nothing fetched from elsewhere
        assert b"http://" not in body and b"https://" not in body, name
    assert "new WebSocket" in files["chat.js"].decode()


def test_routing_content_types_and_caching() -> None:
    site = WebSite()
    assert site.paths == ["/", "/chat.css", "/chat.js", "/index.html"]
    page = site.respond("GET", "/")
    assert page.status == 200 and page.body == WebSite.shipped_files()["index.html"]
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert page.header("Cache-Control") == "no-cache"
    assert page.header("Content-Length") == str(len(page.body))
    script = site.respond("GET", "/chat.js?v=1")
    assert script.header("Content-Type") == "text/javascript; charset=utf-8"
    assert script.header("Cache-Control") == "public, max-age=3600"
    assert site.respond("GET", "/chat.css").header("Content-Type") == "text/css; charset=utf-8"
    assert site.respond("GET", "/").header("X-Content-Type-Options") == "nosniff"


def test_routing_errors() -> None:
    site = WebSite()
    for target in ("/nope", "/../setup.cfg", "/web/chat.js", "/index.html/", "//etc/passwd", "/%2e%2e/x"):
        assert site.respond("GET", target).status == 404, target
    refused = site.respond("POST", "/")
    assert refused.status == 405 and refused.header("Allow") == "GET, HEAD"
    assert site.respond("DELETE", "/ws").status == 405
    assert site.respond("GET", "/ws").status == 426         # /ws without the upgrade
    assert site.respond("GET", "http://[bad").status == 400
    assert site.respond("GET", "*").status == 400


def test_head_and_etag() -> None:
    site = WebSite()
    full = site.respond("GET", "/chat.js")
    head = site.respond("HEAD", "/chat.js")
    assert head.status == 200 and head.body == b"" and head.header("Content-Length") == str(len(full.body))
    etag = full.header("ETag")
    assert etag and etag.startswith('"')
    again = site.respond("GET", "/chat.js", {"if-none-match": f'"other", {etag}'})
    assert again.status == 304 and again.body == b"" and again.header("ETag") == etag
    assert site.respond("GET", "/chat.js", [("if-none-match", '"other"')]).status == 200


def test_custom_files_unknown_extensions_skipped() -> None:
    site = WebSite({"index.html": b"<p>hi</p>", "notes.md": b"x", "logo.svg": b"<svg/>"})
    assert site.paths == ["/", "/index.html", "/logo.svg"]
    assert site.respond("GET", "/logo.svg").header("Content-Type") == "image/svg+xml"
    assert site.respond("GET", "/notes.md").status == 404


# ---------------------------------------------------------------------- over loopback

class HttpClient:
    """h11 on a plain (gevent) socket: requests in order on one connection."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=10)
        self.h11 = h11.Connection(h11.CLIENT)

    def request(self, method: str, target: str, headers: Optional[List[Tuple[str, str]]] = None
                ) -> Tuple[h11.Response, bytes]:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        all_headers = [("Host", "127.0.0.1"), *(headers or [])]
        data = self.h11.send(h11.Request(method=method, target=target, headers=all_headers))
        data += self.h11.send(h11.EndOfMessage())
        self.sock.sendall(data)
        response: Optional[h11.Response] = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    def close(self) -> None:
        self.sock.close()


def header(response: h11.Response, name: str) -> Optional[str]:
    for key, value in response.headers:
        if key == name.lower().encode():
            return value.decode()
    return None


def raw_exchange(port: int, data: bytes, half_close: bool = False) -> bytes:
    """Send raw bytes, return everything until the server closes."""
    with gevent.socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(stdlib_socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.fixture
def web(driver) -> Iterator[ChatServer]:
    server = ChatServer("127.0.0.1", 0, web=0)
    server.start()
    yield server
    server.stop(grace=2)


def test_page_and_files_on_one_keepalive_connection(web: ChatServer) -> None:
    assert web.web_address is not None and web.web_address[1] != web.address[1]
    client = HttpClient(web.web_address[1])
    try:
        response, body = client.request("GET", "/")
        assert response.status_code == 200 and response.reason == b"OK"
        assert header(response, "content-type") == "text/html; charset=utf-8"
        assert header(response, "cache-control") == "no-cache"
        assert b"<title>gsocket chat</title>" in body
        response, body = client.request("GET", "/chat.js")
        assert header(response, "content-type") == "text/javascript; charset=utf-8"
        assert header(response, "cache-control") == "public, max-age=3600"
        assert body == WebSite.shipped_files()["chat.js"]
        etag = header(response, "etag")
        response, body = client.request("GET", "/chat.js", [("If-None-Match", etag or "")])
        assert response.status_code == 304 and body == b""
        response, body = client.request("HEAD", "/chat.css")
        assert response.status_code == 200 and body == b""
        assert header(response, "content-type") == "text/css; charset=utf-8"
        response, body = client.request("GET", "/missing.png")
        assert response.status_code == 404 and b"not found" in body
        response, _ = client.request("POST", "/", [("Content-Length", "0")])
        assert response.status_code == 405 and header(response, "allow") == "GET, HEAD"
        response, _ = client.request("GET", "/ws")                # no Upgrade header
        assert response.status_code == 426
        response, _ = client.request("GET", "/")                  # still serving after errors
        assert response.status_code == 200
    finally:
        client.close()


def test_bad_requests_get_400_and_close(web: ChatServer) -> None:
    assert web.web_address is not None
    port = web.web_address[1]
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40 + b"\r\n\r\n"):
        reply = raw_exchange(port, garbage)
        assert reply.startswith(b"HTTP/1.1 400 "), (garbage, reply)
        assert b"\r\nConnection: close\r\n" in reply
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000     # a head that never ends
    assert raw_exchange(port, huge).startswith(b"HTTP/1.1 431 ")
    # HTTP/1.0 and Connection: close: one answer, then EOF.
    reply = raw_exchange(port, b"GET /chat.css HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(WebSite.shipped_files()["chat.css"])
    reply = raw_exchange(port, b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404 Not Found\r\n")
    # A client that half-closes in the middle of its request: EOF, no answer.
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nHo", half_close=True) == b""
    # One that just vanishes is forgotten.
    gevent.socket.create_connection(("127.0.0.1", port)).close()
    client = HttpClient(port)
    assert client.request("GET", "/")[0].status_code == 200
    client.close()


def test_web_port_in_use_is_named(driver) -> None:
    with gevent.socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = ChatServer("127.0.0.1", 0, web=taken)
        with pytest.raises(OSError) as raised:
            server.start()
        assert f"127.0.0.1:{taken} (web)" in str(raised.value)
        # The line port was released again: a new server can take it.
    other = ChatServer("127.0.0.1", free_port(), web=0)
    other.start()
    other.stop(grace=1)
