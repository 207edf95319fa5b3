"""A small HTTP/1.1 server helper on gsocket ids, built on h11 (sans-I/O).

Enough HTTP for a WebSocket upgrade and a few static pages: read one request
from a started socket id, write one response. h11 does all the parsing and
framing; this module only moves bytes between h11 and :mod:`gsocket.socket`.

Bad input never escapes as anything but :class:`HttpError`, carrying the
status code to answer with (400 malformed, 408 too slow, 413 body too big,
431 headers too big); :func:`write_error` answers it and closes. Header
blocks are bounded by ``max_header`` bytes and bodies by ``max_body``, so a
peer cannot make us buffer without limit. For example::

    req = http.read_request(id)            # None: the peer closed first
    if req.path == "/":
        http.write_response(id, 200, {"Content-Type": "text/plain"}, b"hi")
    else:
        http.write_error(id, 404)
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import unquote

import h11

from . import socket as _socket

__all__ = ["HttpError", "HttpRequest", "read_request", "write_response", "write_error",
           "MAX_HEADER", "MAX_BODY", "REQUEST_TIMEOUT"]

#: Largest request line + header block we buffer (h11's own default).
MAX_HEADER = 16 * 1024
#: Largest request body we buffer.
MAX_BODY = 1 << 20
#: Seconds a whole request may take to arrive (slow peers get 408).
REQUEST_TIMEOUT = 10.0

HeaderArg = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class HttpError(Exception):
    """The peer sent something we will not serve; ``status`` is the HTTP
    status code to answer with (see :func:`write_error`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class HttpRequest:
    """One request read by :func:`read_request`.

    ``request`` is the :class:`h11.Request`; ``body`` the whole body;
    ``extra`` the bytes the peer sent after this request (after an upgrade,
    the first bytes of the new protocol). ``method``, ``target`` (as sent),
    ``path`` (decoded, without the query), ``query`` and ``headers`` (a dict
    of lower-case names; repeated headers joined with ", ") are str.
    """

    __slots__ = ("request", "body", "extra", "method", "target", "path", "query",
                 "headers", "_conn")

    def __init__(self, request: h11.Request, body: bytes, extra: bytes, conn: h11.Connection) -> None:
        self.request = request
        self.body = body
        self.extra = extra
        self._conn = conn
        self.method = request.method.decode("ascii", "replace")
        self.target = request.target.decode("ascii", "replace")
        raw_path, _, self.query = self.target.partition("?")
        self.path = unquote(raw_path)
        self.headers = _header_dict(request.headers)

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    @property
    def header_list(self) -> List[Tuple[bytes, bytes]]:
        """The headers as h11 gives them: (lower-case name, value) bytes pairs."""
        return list(self.request.headers)

    def __repr__(self) -> str:
        return f"<HttpRequest {self.method} {self.target} body={len(self.body)}>"


def _header_dict(headers: Iterable[Tuple[bytes, bytes]]) -> Dict[str, str]:
    result: Dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        result[key] = f"{result[key]}, {text}" if key in result else text
    return result


def read_request(socket_id: int, *, timeout: Optional[float] = REQUEST_TIMEOUT,
                 max_header: int = MAX_HEADER, max_body: int = MAX_BODY,
                 previous: Optional[HttpRequest] = None) -> Optional[HttpRequest]:
    """Read one whole HTTP/1.1 request (head and body) from a started id.

    Blocks the calling greenlet until the request is complete, at most
    ``timeout`` seconds in all (None: no limit). Returns an
    :class:`HttpRequest`, or None when the peer closed (or the id is gone)
    before a whole request arrived. Raises :class:`HttpError` (with the
    status to answer) on a malformed request (400), a slow one (408), a
    body over ``max_body`` (413) or a head over ``max_header`` bytes (431).
    Pass ``previous`` to read the next request of a kept-alive connection.
    """
    if previous is not None:
        conn = previous._conn
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            raise RuntimeError("the previous request was not answered, or the connection must close")
        # What the peer sent after the previous request (a pipelined one)
        # is still in h11's buffer (``previous.extra`` is a copy of it).
        conn.start_next_cycle()
    else:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header)
    deadline = None if timeout is None else time.monotonic() + timeout
    request: Optional[h11.Request] = None
    body: List[bytes] = []
    size = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise HttpError(exc.error_status_hint, str(exc) or "bad request") from None
        if event is h11.NEED_DATA:
            data = _read_some(socket_id, deadline)
            if data is None:
                return None
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            # h11 bounds only a head still incomplete; one that arrived
            # whole in a chunk is measured here.
            if _head_size(event) > max_header:
                raise HttpError(431, f"request head over {max_header} bytes")
            request = event
            length = _content_length(event)
            if length is not None and length > max_body:
                raise HttpError(413, f"body of {length} bytes is over {max_body}")
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > max_body:
                raise HttpError(413, f"body over {max_body} bytes")
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            if request is None:   # PAUSED before a request: cannot happen with h11
                raise HttpError(400, "no request")
            # What follows the request (another request, or after an
            # upgrade the new protocol's first bytes) stays in h11's buffer.
            extra, _closed = conn.trailing_data
            return HttpRequest(request, b"".join(body), bytes(extra), conn)
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _head_size(request: h11.Request) -> int:
    """The size of a request's head as sent, give or take whitespace:
    "METHOD TARGET HTTP/x.y" CRLF, "name: value" CRLF each, CRLF."""
    size = len(request.method) + len(request.target) + 12
    for name, value in request.headers:
        size += len(name) + len(value) + 4
    return size + 2


def _content_length(request: h11.Request) -> Optional[int]:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:   # h11 rejects these first; be safe anyway
                return None
    return None


def _read_some(socket_id: int, deadline: Optional[float]) -> Optional[bytes]:
    remaining = None
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HttpError(408, "request timeout")
    try:
        return _socket.read(socket_id, timeout=remaining)
    except TimeoutError:
        raise HttpError(408, "request timeout") from None


def _header_pairs(headers: HeaderArg) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _phrase(status: int, default: str) -> str:
    """The standard reason phrase of ``status`` ("Not Found"), or ``default``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return default


def write_response(socket_id: int, status: int, headers: HeaderArg = None,
                   body: Union[bytes, str] = b"", *, request: Optional[HttpRequest] = None,
                   close: bool = True, reason: Optional[str] = None) -> bool:
    """Write one whole response (status line, headers, body) to ``socket_id``.

    ``headers`` is a dict or (name, value) pairs; Content-Length is added
    unless given; a str body is UTF-8. With ``request`` the response answers
    it (no body for HEAD; HTTP/1.0 framing); ``reason`` defaults to the
    standard phrase ("OK"). Never blocks. With ``close``
    (the default) or when HTTP says the connection cannot be reused, it adds
    ``Connection: close``, closes the socket gracefully (every byte still
    reaches the peer) and returns False. Otherwise returns True: the
    connection stays open for ``read_request(id, previous=request)``. False
    too when the socket is already gone.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    pairs = _header_pairs(headers)
    names = {name.lower() for name, _ in pairs}
    if "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    if close and "connection" not in names:
        pairs.append(("Connection", "close"))
    conn = request._conn if request is not None else h11.Connection(h11.SERVER)
    if reason is None:
        reason = _phrase(status, "")
    response = h11.Response(status_code=status, headers=pairs, reason=reason.encode("latin-1"))
    chunks = [conn.send(response)]
    if body and not (request is not None and request.request.method == b"HEAD"):
        chunks.append(conn.send(h11.Data(data=body)))
    chunks.append(conn.send(h11.EndOfMessage()))
    sent = _socket.write(socket_id, [c for c in chunks if c])
    reusable = (not close and request is not None and conn.our_state is h11.DONE
                and conn.their_state is h11.DONE)
    if not reusable:
        _socket.close(socket_id)
        return False
    return sent


def write_error(socket_id: int, status: int, message: str = "", *,
                request: Optional[HttpRequest] = None,
                headers: HeaderArg = None) -> None:
    """Answer ``status`` with a short text/plain body (``message``, or the
    standard reason), then close the socket gracefully. Never blocks
    (the close waits only for the id to be released)."""
    text = f"{status} {message or _phrase(status, 'Error')}\n"
    pairs = _header_pairs(headers) + [("Content-Type", "text/plain; charset=utf-8")]
    try:
        write_response(socket_id, status, pairs, text, request=request, close=True)
    except h11.LocalProtocolError:
        # h11 will not frame a response here (e.g. already answered): just close.
        _socket.close(socket_id)
