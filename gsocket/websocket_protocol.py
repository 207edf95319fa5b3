"""The sans-I/O half of :mod:`gsocket.websocket`: bytes in, events out.

:class:`WebSocketProtocol` wraps one established :class:`wsproto.Connection`
(RFC 6455 framing, masking, UTF-8 checks and the close handshake are
wsproto's) and adds what gsocket's API promises on top:

- whole messages: fragments are reassembled (into one bytearray, UTF-8 for
  text, so a stream of tiny or empty fragments costs no more memory than
  the message itself); text comes out as str;
- ``max_message``: a message growing past it is refused with close 1009
  (counted as it arrives, so a huge declared frame is never buffered whole;
  :attr:`WebSocketProtocol.pending` never exceeds it);
- control frames answered at once: ping -> pong, close -> close;
- a protocol violation (an unmasked client frame, a bad opcode, invalid
  UTF-8 ...) fails the connection with wsproto's code (1002, 1007).

``feed(data)`` then ``events()`` (lazily parsed; or ``receive(data)``, a
list) gives the events; ``take_output()`` the bytes to
write to the peer, produced by receiving (pongs, close replies) or sending.
``done`` is True once the TCP connection should be closed.
Nothing the peer sends makes ``feed``/``events``/``receive`` raise: its
errors arrive as :class:`Failed` (carrying a :class:`WebSocketError`)
followed by :class:`Closed`. Only misuse by the caller raises (ValueError
from ``send``/``ping``).
No extension (permessage-deflate) is negotiated: compressed input could
expand past any memory bound before ``max_message`` sees it.
"""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Union

from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage, CloseConnection, Message, Ping as WsPing, Pong as WsPong, TextMessage,
)

__all__ = ["WebSocketProtocol", "WebSocketError", "MessageReceived", "PingReceived", "PongReceived", "Closed",
           "Failed", "ProtocolEvent", "TEXT", "BINARY"]

TEXT = "text"
BINARY = "binary"

#: Close codes (RFC 6455 section 7.4.1).
NORMAL = 1000
PROTOCOL_ERROR = 1002
NO_STATUS = 1005
ABNORMAL = 1006
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


class WebSocketError(Exception):
    """The peer broke the protocol (``code`` 1002, 1007 ...) or sent a
    message over ``max_message`` (``code`` 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class MessageReceived(NamedTuple):
    """A whole message: ``data`` is str for kind "text", bytes for "binary"."""

    data: Union[str, bytes]
    kind: str


class PingReceived(NamedTuple):
    """The peer pinged (the pong is already in the output)."""

    data: bytes


class PongReceived(NamedTuple):
    """The peer answered a ping with a pong carrying ``data``."""

    data: bytes


class Failed(NamedTuple):
    """The peer broke the protocol or the size limit; a Closed follows."""

    error: WebSocketError


class Closed(NamedTuple):
    """The WebSocket is closed: the peer's code and reason (1006 when the
    connection dropped without a close frame; our code when we failed it)."""

    code: int
    reason: str


ProtocolEvent = Union[MessageReceived, PingReceived, PongReceived, Failed, Closed]


class WebSocketProtocol:
    """One open WebSocket, sans I/O (see the module docstring)."""

    def __init__(self, connection: Connection, *, max_message: int = 1 << 20) -> None:
        self.connection = connection
        self.max_message = max_message
        self.output = bytearray()
        self.done = False            # the TCP connection should now be closed
        self.closed: Optional[Closed] = None
        self._partial = bytearray()  # the message being reassembled (UTF-8 for text)
        self._partial_kind: Optional[str] = None   # its kind while one is open
        self._discarding = False     # after we refused a message: ignore data
        self._failed: Optional[WebSocketError] = None
        self._pending: List[Closed] = []

    # ------------------------------------------------------------------ output

    def take_output(self) -> bytes:
        """The bytes to write to the peer now (and forget them)."""
        data = bytes(self.output)
        self.output.clear()
        return data

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete (at most ``max_message``)."""
        return len(self._partial)

    @property
    def open(self) -> bool:
        """True while messages may still be sent."""
        return not self.done and self.connection.state is ConnectionState.OPEN

    def send(self, data: Union[str, bytes, bytearray, memoryview], kind: Optional[str] = None) -> bool:
        """Queue one message (str -> text, bytes -> binary unless ``kind``
        says otherwise); False when the WebSocket is no longer open."""
        if not self.open:
            return False
        if kind is None:
            kind = TEXT if isinstance(data, str) else BINARY
        if kind == TEXT:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            self.output += self.connection.send(TextMessage(data=text))
        elif kind == BINARY:
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            self.output += self.connection.send(BytesMessage(data=payload))
        else:
            raise ValueError(f"kind must be 'text' or 'binary', not {kind!r}")
        return True

    def ping(self, data: bytes = b"") -> bool:
        """Queue a ping (at most 125 bytes); False when not open."""
        if len(data) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        if not self.open:
            return False
        self.output += self.connection.send(WsPing(payload=bytes(data)))
        return True

    def close(self, code: int = NORMAL, reason: str = "") -> bool:
        """Start the close handshake; False if it was already started."""
        if self.connection.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return False
        self.output += self.connection.send(CloseConnection(code=code, reason=reason))
        if self.connection.state is ConnectionState.CLOSED:
            self.done = True
        return True

    # ------------------------------------------------------------------ input

    def receive(self, data: Optional[bytes]) -> List[ProtocolEvent]:
        """Feed bytes from the peer (None: the connection dropped; b"": only
        collect pending events); returns the events they complete."""
        self.feed(data)
        return list(self.events())

    def feed(self, data: Optional[bytes]) -> None:
        """Feed bytes from the peer (None: the connection dropped); then
        iterate :meth:`events` to the end."""
        if self.done or self.closed is not None:
            return
        if data is None:
            self.done = True
            failed = self._failed
            self._pending.append(Closed(failed.code, failed.reason) if failed else Closed(ABNORMAL, ""))
            return
        if data:
            self.connection.receive_data(data)

    def events(self) -> Iterator[ProtocolEvent]:
        """The events of what was fed, parsed lazily: acting on a message
        before taking the next event lets a reply go out before a close
        frame that followed it is answered."""
        events: List[ProtocolEvent] = []
        while self._pending:
            self._finish(events, self._pending.pop(0))
        yield from events
        if self.closed is not None:
            return
        for event in self.connection.events():
            events = []
            if isinstance(event, Message):
                self._message(event, events)
            elif isinstance(event, WsPing):
                if self.open:
                    self.output += self.connection.send(event.response())
                events.append(PingReceived(bytes(event.payload)))
            elif isinstance(event, WsPong):
                events.append(PongReceived(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self._close_event(event, events)
            yield from events
            if self.closed is not None:
                return

    def _message(self, event: Message, events: List[ProtocolEvent]) -> None:
        if self._discarding:
            return
        part = event.data
        kind = TEXT if isinstance(event, TextMessage) else BINARY
        if self._partial_kind is None and event.message_finished:     # one frame: no copy
            size = len(part) if not isinstance(part, str) or part.isascii() else len(part.encode("utf-8"))
            if size > self.max_message:
                self._too_big(events)
            else:
                events.append(MessageReceived(part, kind))
            return
        self._partial_kind = kind
        chunk = part.encode("utf-8") if isinstance(part, str) else part
        if len(self._partial) + len(chunk) > self.max_message:
            self._too_big(events)
            return
        self._partial += chunk
        if event.message_finished:
            data = bytes(self._partial)
            self._partial = bytearray()
            self._partial_kind = None
            # wsproto checked the UTF-8 incrementally: decoding cannot fail.
            events.append(MessageReceived(data.decode("utf-8") if kind == TEXT else data, kind))

    def _too_big(self, events: List[ProtocolEvent]) -> None:
        self._fail(events, WebSocketError(MESSAGE_TOO_BIG, f"message over {self.max_message} bytes"),
                   wait=True)

    def _close_event(self, event: CloseConnection, events: List[ProtocolEvent]) -> None:
        state = self.connection.state
        if state is ConnectionState.REMOTE_CLOSING:       # the peer closes: answer
            self.output += self.connection.send(event.response())
            self.done = True
            self._finish(events, Closed(event.code, event.reason or ""))
        elif state is ConnectionState.CLOSED:             # the reply to our close
            self.done = True
            failed = self._failed
            self._finish(events, Closed(failed.code, failed.reason) if failed
                         else Closed(event.code, event.reason or ""))
        else:   # wsproto could not parse the input (state still OPEN): fail it
            code = event.code if event.code is not None else PROTOCOL_ERROR
            self._fail(events, WebSocketError(code, event.reason or "protocol error"), wait=False)

    def _fail(self, events: List[ProtocolEvent], error: WebSocketError, *, wait: bool) -> None:
        """Refuse the peer: report, send our close; with ``wait`` keep
        reading (ignoring data) for its close reply, else drop the TCP
        connection right away (the input cannot be parsed any further)."""
        events.append(Failed(error))
        self._failed = error
        self._partial = bytearray()
        self._partial_kind = None
        self._discarding = True
        if self.open:
            self.output += self.connection.send(CloseConnection(code=error.code, reason=error.reason))
        if not wait:
            self.done = True
            self._finish(events, Closed(error.code, error.reason))

    def _finish(self, events: List[ProtocolEvent], closed: Closed) -> None:
        if self.closed is None:
            self.closed = closed
            events.append(closed)

