"""TLS connections: a stream slot that speaks TLS through ``ssl.SSLObject``
and two memory BIOs, on the same libev watcher callbacks as a TCP stream.

Theory of operation
-------------------
No greenlet per connection and nothing that blocks the hub: the read
watcher feeds the bytes it reads into the *incoming* BIO, the SSL object
turns them into plaintext (DATA events) or handshake progress, and whatever
the SSL object wants to send (handshake records, application records,
alerts, close_notify) is taken from the *outgoing* BIO into one ciphertext
buffer, ``cipher``, which always goes to the kernel first.

The handshake runs before OPEN: an accepted connection starts it on
``start(id)`` (OPEN "start" once it is done), a connection made by
``connect`` once TCP is up (OPEN with the peer's "host:port"). While it
runs the slot is CONNECTING, so data sent meanwhile is queued. A failed
handshake is one SOCKET_ERROR with the reason, then the fd closes (FIN,
after whatever alert OpenSSL had for the peer); the listener is untouched.

Writes keep the TCP rules. Plaintext waits in the slot's high and low
queues and is encrypted only at flush time, at most :data:`ENCRYPT_CHUNK`
bytes at a time, and only once the ciphertext before it is fully written:
TLS records leave in the order they were made, and a partly written
ciphertext chunk finishes before anything else. A low-priority buffer split
by the chunk size moves its rest to the high queue (as the TCP writer does
with a partly written low buffer), so it still finishes before later high
data. ``pending_bytes`` counts plaintext: queued bytes plus those of the
ciphertext chunk not yet fully written; WARNING thresholds, ``wbuffer`` in
netstat and drain see the same numbers as over TCP. ``write``/``read`` in
netstat count plaintext bytes too.

``close`` flushes every queued byte, then sends close_notify, then the FIN.
``shutdown`` (forceful) closes at once, without close_notify.
"""

from __future__ import annotations

import re
import ssl
from typing import Any, Optional

from gevent.hub import Waiter

from .events import SOCKET_CLOSE, SOCKET_ERROR, SOCKET_OPEN, SocketMessage
from ._connecting import ConnectingSlot
from ._listener import ListenerSlot, ReserveFd
from ._netutil import WOULD_BLOCK, error_text, format_address, logger
from ._slot import (
    CLOSED, CLOSING, CONNECTED, CONNECTING, HALFCLOSE_READ, PACCEPT, Slot, SlotHost, State,
)
from ._stream import MAX_READ_BUFFER, MAX_READS_PER_WAKEUP, MIN_READ_BUFFER, StreamSlot, _own

__all__ = ["TlsSlot", "TlsListenerSlot", "check_tls_arguments", "wait_handshake",
           "tls_error_text", "ENCRYPT_CHUNK"]

#: Plaintext bytes encrypted in one step of the writer. Bounds the
#: ciphertext held per connection; large enough that a bulk write costs few
#: steps (16 records of the TLS maximum, 16 KiB each).
ENCRYPT_CHUNK = 256 * 1024
#: The largest plaintext of one TLS record (RFC 8446 5.1: 2**14): one
#: SSLObject.read returns at most one record.
RECORD_SIZE = 16384
#: Bytes read from the kernel per wake-up while the handshake runs.
HANDSHAKE_READ = 65536

_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def tls_error_text(err: BaseException) -> str:
    """The text of an ERROR event for a TLS failure: OpenSSL's reason (and
    the certificate check's), without the ``(_ssl.c:NNN)`` suffix. Never
    blocks."""
    if isinstance(err, ssl.SSLError):
        return _SSL_SOURCE.sub("", str(err)) or type(err).__name__
    return error_text(err)


def check_tls_arguments(ssl_context: Any, server_hostname: Any) -> None:
    """TypeError unless ``ssl_context`` is None or an ``ssl.SSLContext``
    (and ``server_hostname`` None or a str); ValueError for a
    ``server_hostname`` without a context. Never blocks."""
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}")
    if server_hostname is not None:
        if not isinstance(server_hostname, str):
            raise TypeError("server_hostname must be a str")
        if ssl_context is None:
            raise ValueError("server_hostname needs an ssl_context")


class TlsSlot(ConnectingSlot):
    """A TLS connection: accepted (PACCEPT until started; server side) or
    made by connect / block_connect (client side). CONNECTING while the
    TCP connect or the handshake runs."""

    __slots__ = ("context", "server_side", "hostname", "tls", "incoming", "outgoing",
                 "handshaking", "open_text", "cipher", "cipher_sent", "cipher_plain",
                 "notify_sent", "handshake_waiter")

    def __init__(self, host: SlotHost, opaque: int, context: ssl.SSLContext, server_side: bool,
                 hostname: Optional[str] = None, sock: Any = None,
                 state: State = CONNECTING) -> None:
        ConnectingSlot.__init__(self, host, opaque, sock)
        self.state = state
        self.context = context
        self.server_side = server_side
        self.hostname = hostname
        self.tls: Any = None
        self.incoming: Any = None
        self.outgoing: Any = None
        self.handshaking = False
        self.open_text = "start"
        #: Ciphertext not yet written (from cipher_sent on) and how many
        #: plaintext bytes it carries (0 for handshake records, alerts...).
        self.cipher = b""
        self.cipher_sent = 0
        self.cipher_plain = 0
        self.notify_sent = False
        #: block_connect waits on it for the handshake (no events then on failure).
        self.handshake_waiter: Optional[Waiter] = None

    def netstat_type(self) -> str:
        state = self.state
        return "CLOSING" if state is HALFCLOSE_READ or state is CLOSING else "TLS"

    # ------------------------------------------------------------------ start / pause

    def start(self, handed_over: bool) -> None:
        if self.state is PACCEPT:
            self.state = CONNECTING
            self.begin_handshake()
        else:
            ConnectingSlot.start(self, handed_over)

    def pause(self) -> None:
        if self.handshaking:
            self.connect_paused = True   # the handshake must read on; data waits after it
        else:
            ConnectingSlot.pause(self)

    # ------------------------------------------------------------------ handshake

    def connected(self) -> None:
        """TCP is up (connect / block_connect): start the handshake."""
        try:
            self.name = format_address(self.sock.getpeername())
        except OSError:
            self.name = ""
        self.stop_writing()   # the connect's watcher; the handshake starts its own
        if self.state is CLOSING and not self.pending_bytes:
            self.force_close(report=False)
            return
        self.open_text = self.name
        self.begin_handshake()

    def begin_handshake(self) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        try:
            self.tls = self.context.wrap_bio(self.incoming, self.outgoing,
                                             server_side=self.server_side,
                                             server_hostname=self.hostname)
        except (ssl.SSLError, ValueError) as err:
            self.handshake_failed(err)
            return
        self.handshaking = True
        self.start_reading()
        self.handshake_step()

    def handshake_step(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.take_output()
            if not self.flush() and self.state is not CLOSED:
                self.start_writing()
            return
        except (ssl.SSLError, OSError, ValueError) as err:
            self.take_output()
            self.flush()   # the alert, if the kernel takes it now; no waiting
            self.handshake_failed(err)
            return
        self.take_output()
        self.handshaking = False
        self.handshake_done()

    def read_handshake(self) -> None:
        try:
            data = self.recv(HANDSHAKE_READ)
        except WOULD_BLOCK:
            return
        except OSError as err:
            self.handshake_failed(err)
            return
        if data:
            self.rtime = self.host.loop.now()   # handshake bytes count for idle_timeout
            self.incoming.write(data)
        else:
            self.incoming.write_eof()
        self.handshake_step()

    def handshake_done(self) -> None:
        state = self.state
        if state is CONNECTING:
            self.state = CONNECTED
            self.message(SOCKET_OPEN, 0, self.open_text)
            if self.connect_paused:
                self.stop_reading()
        # CLOSING: close() came during the handshake; CLOSE was reported,
        # the queue flushes below and close_notify follows.
        waiter = self.handshake_waiter
        if waiter is not None:
            self.handshake_waiter = None
            self.host.loop.run_callback(waiter.switch, None)
        if state is CONNECTING and not self.read_plain():
            return
        self.kick()

    def handshake_failed(self, err: BaseException) -> None:
        text = tls_error_text(err)
        if not text.startswith("TLS"):
            text = "TLS handshake failed: " + text
        waiter = self.handshake_waiter
        self.handshake_waiter = None
        state = self.state
        self.handshaking = False
        self.force_close(report=False)
        if waiter is not None:   # block_connect raises it; no event
            failure = err if isinstance(err, OSError) else ssl.SSLError(text)
            self.host.loop.run_callback(waiter.throw, failure)
            return
        logger.debug("socket %d: %s", self.id, text)
        if state is CONNECTING:   # CLOSING: the owner heard CLOSE already
            self.message(SOCKET_ERROR, 0, text)

    # ------------------------------------------------------------------ reader

    def on_readable(self) -> None:
        if self.handshaking:
            self.read_handshake()
            return
        recv = self.recv
        for _ in range(MAX_READS_PER_WAKEUP):
            size = self.read_size
            try:
                data = recv(size)
            except WOULD_BLOCK:
                return
            except OSError as err:
                self.io_error(err)
                return
            received = len(data)
            if self.state is CLOSING:
                if not received:
                    self.on_eof()
                    return
                continue   # close() was called: incoming bytes are discarded
            if not received:
                self.incoming.write_eof()
                if self.read_plain(at_eof=True):
                    self.on_eof()
                return
            self.incoming.write(data)
            if not self.read_plain():
                return
            if received == size:
                if size < MAX_READ_BUFFER:
                    self.read_size = size * 2
                continue
            if size > MIN_READ_BUFFER and received * 2 < size:
                self.read_size = size // 2
            return

    def read_plain(self, at_eof: bool = False) -> bool:
        """Decrypt what the incoming BIO holds and emit it as one DATA;
        False when the slot stopped reading (the peer's close_notify or
        EOF: CLOSE; a broken record: ERROR). ``at_eof``: the kernel said EOF."""
        tls = self.tls
        read = tls.read
        incoming = self.incoming
        parts = []
        ended = False
        failure: Optional[BaseException] = None
        try:
            # Read while bytes wait (in the BIO or decrypted inside the SSL
            # object): the common case ends without an SSLWantReadError.
            while incoming.pending or tls.pending() or at_eof:
                chunk = read(RECORD_SIZE)
                if not chunk:   # the peer's close_notify
                    ended = True
                    break
                parts.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            ended = True   # close_notify, or EOF without it (as a TCP FIN)
        except (ssl.SSLError, ValueError) as err:
            failure = err
        if parts:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            self.bytes_read += len(data)
            self.rtime = self.host.loop.now()
            self.host.emit_data(self.id, self.opaque, data)
        if failure is not None:
            self.tls_failed(failure)
            return False
        if self.outgoing.pending:   # a post-handshake message to answer
            self.take_output()
            self.kick()
            if self.state is CLOSED:
                return False
        if ended:
            self.on_eof()
            return False
        return True

    def tls_failed(self, err: BaseException) -> None:
        """A record could not be decrypted or written: ERROR with the reason, then close."""
        state = self.state
        if state is CLOSING or state is HALFCLOSE_READ:
            self.force_close(report=False)
            return
        self.message(SOCKET_ERROR, 0, tls_error_text(err))
        self.force_close(report=True)

    def on_eof(self) -> None:
        self.stop_reading()
        state = self.state
        if state is CLOSING:
            if not self.pending_bytes and self.cipher_sent >= len(self.cipher):
                self.force_close(report=False)
            return
        if state is not HALFCLOSE_READ and state is not CLOSED:
            self.state = HALFCLOSE_READ
            self.emit(SocketMessage(SOCKET_CLOSE, self.id, self.opaque, 0, None))

    # ------------------------------------------------------------------ writer

    def send(self, data: Any, low_priority: bool) -> bool:
        """Queue ``data`` (plaintext) and flush now when nothing waits before it."""
        state = self.state
        if state is CLOSING or state is CLOSED or self.write_shut:
            return False
        parts = data if isinstance(data, list) else (data,)
        total = 0
        for part in parts:
            total += len(part)
        if not total:
            return True
        waiting = (self.high or self.low or self.cipher_sent < len(self.cipher)
                   or state is CONNECTING or state is PACCEPT)
        queue = self.queue_for(low_priority)
        for part in parts:
            if len(part):
                queue.append(_own(part))
        self.pending_bytes += total
        if waiting:
            self.check_warning()
            if state is not CONNECTING and state is not PACCEPT:
                self.start_writing()
            return True
        # Nothing queued before it: encrypt and write now (skynet's direct
        # write); only what the kernel did not take counts as pending.
        if not self.flush():
            if self.state is CLOSED:
                return False
            self.check_warning()
            self.start_writing()
        return True

    def on_writable(self) -> None:
        if not self.flush() or self.state is CLOSED:
            return
        if self.handshaking:
            self.stop_writing()
            return
        self.all_written()

    def kick(self) -> None:
        """Flush now; run the writer for what the kernel did not take."""
        if self.flush():
            if self.state is not CLOSED:
                self.all_written()
        elif self.state is not CLOSED:
            self.start_writing()

    def all_written(self) -> None:
        """Nothing left to write: stop the writer, finish a close or a
        shutdown_write (close_notify first), say WARNING 0, wake drain."""
        self.writer_drained()
        if self.state is CLOSED:
            return
        if self.below_waiters is not None:
            self.wake_below_waiters()
        if self.write_shut:
            self.shut_write_now()

    def shut_write_now(self) -> None:
        """shutdown_write once the queue is out: close_notify, then the FIN."""
        if self.tls is not None and not self.handshaking and not self.notify_sent:
            self.queue_close_notify()
            if not self.flush():
                if self.state is not CLOSED:
                    self.start_writing()   # all_written comes back here
                return
        if not self.handshaking:
            StreamSlot.shut_write_now(self)

    def take_output(self) -> None:
        """Move what the SSL object produced behind the ciphertext not yet written."""
        out = self.outgoing.read()
        if out:
            sent = self.cipher_sent
            if sent < len(self.cipher):
                self.cipher = self.cipher[sent:] + out
            else:
                self.cipher = out
            self.cipher_sent = 0

    def flush(self) -> bool:
        """Write ciphertext, encrypting the next chunk of plaintext (high
        queue first) each time the previous one is fully out. True when
        nothing is left to write; False when the kernel is full or the
        socket failed (then it is closed)."""
        send = self.write_one
        while True:
            cipher = self.cipher
            sent = self.cipher_sent
            if sent < len(cipher):
                try:
                    written = send(memoryview(cipher)[sent:] if sent else cipher)
                except WOULD_BLOCK:
                    return False
                except OSError as err:
                    if self.handshaking:
                        self.handshake_failed(err)
                    else:
                        self.io_error(err)
                    return False
                self.wtime = self.host.loop.now()
                sent += written
                self.cipher_sent = sent
                if sent < len(cipher):
                    return False
            plain = self.cipher_plain
            if plain:
                self.cipher_plain = 0
                self.pending_bytes -= plain
                self.bytes_written += plain
                if self.below_waiters is not None:
                    self.wake_below_waiters()
            self.cipher = b""
            self.cipher_sent = 0
            if self.handshaking or self.notify_sent or self.tls is None:
                return True
            if self.high:
                self.encrypt(self.high, False)
            elif self.low:
                self.encrypt(self.low, True)
            else:
                return True
            if self.state is CLOSED:
                return False

    def encrypt(self, queue: Any, is_low: bool) -> None:
        """Encrypt up to ENCRYPT_CHUNK plaintext bytes from the head of
        ``queue`` into ``cipher``."""
        write = self.tls.write
        budget = ENCRYPT_CHUNK
        plain = 0
        try:
            while queue and budget > 0:
                head = queue[0]
                size = len(head)
                if size > budget:
                    view = memoryview(head)
                    piece = view[:budget]
                    if is_low:
                        # A started low-priority buffer finishes before any
                        # later high-priority one (high is empty here).
                        queue.popleft()
                        self.queue_for(False).append(view[budget:])
                    else:
                        queue[0] = view[budget:]
                    size = budget
                else:
                    piece = head
                    queue.popleft()
                done = write(piece)
                while done < size:   # partial-write mode: one record per call
                    done += write(memoryview(piece)[done:])
                plain += size
                budget -= size
                if is_low and self.high:
                    break
        except (ssl.SSLError, ValueError) as err:
            self.pending_bytes -= plain
            self.tls_failed(err)
            return
        self.cipher_plain = plain
        self.take_output()

    def writer_drained(self) -> None:
        if self.state is CLOSING and not self.notify_sent and self.tls is not None:
            self.queue_close_notify()
            if not self.flush():
                if self.state is not CLOSED:
                    self.start_writing()
                return
        Slot.writer_drained(self)

    # ------------------------------------------------------------------ close

    def queue_close_notify(self) -> None:
        self.notify_sent = True
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass   # close_notify is out; the peer's is not awaited
        except (ssl.SSLError, ValueError) as err:
            logger.debug("socket %d: close_notify: %s", self.id, tls_error_text(err))
        self.take_output()

    def close(self) -> None:
        """Graceful close: CLOSE now; flush, close_notify, then the FIN."""
        state = self.state
        if state is CLOSING or state is CLOSED:
            return
        if state is PACCEPT and self.pending_bytes:
            # Sent to before start(): the handshake runs now, for those bytes.
            self.state = CLOSING
            self.emit(SocketMessage(SOCKET_CLOSE, self.id, self.opaque, 0, None))
            self.begin_handshake()
            return
        if self.handshaking or state is CONNECTING or state is PACCEPT:
            # No session yet: as over TCP (a handshake in flight goes on
            # while bytes wait for it).
            Slot.close(self)
            return
        self.state = CLOSING
        if state is not HALFCLOSE_READ:
            self.emit(SocketMessage(SOCKET_CLOSE, self.id, self.opaque, 0, None))
        self.kick()

    def close_fd(self, last_state: State, drain: int) -> None:
        StreamSlot.close_fd(self, last_state, drain)
        self.cipher = b""
        self.cipher_sent = self.cipher_plain = 0
        self.incoming = self.outgoing = self.tls = None
        waiter = self.handshake_waiter
        if waiter is not None:   # closed (shutdown, release) while block_connect waits
            self.handshake_waiter = None
            self.host.loop.run_callback(
                waiter.throw, ConnectionAbortedError("TLS connection closed during the handshake"))


class TlsListenerSlot(ListenerSlot):
    """A listener whose every accepted connection is a server-side TlsSlot."""

    __slots__ = ("context",)

    def __init__(self, host: SlotHost, opaque: int, sock: Any, reserve: ReserveFd,
                 context: ssl.SSLContext) -> None:
        ListenerSlot.__init__(self, host, opaque, sock, reserve)
        self.context = context

    def new_stream(self, conn: Any) -> Slot:
        return TlsSlot(self.host, self.opaque, self.context, True, sock=conn, state=PACCEPT)


def wait_handshake(slot: TlsSlot, hub: Any) -> None:
    """Block the calling greenlet until the handshake of ``slot`` (started
    by ``connected()``) is done. Raises the handshake's error (an OSError,
    ssl.SSLError for TLS failures) with the slot closed and no event sent;
    anything raised while waiting (a Timeout) closes the slot too."""
    if slot.state is CLOSED:
        raise ConnectionError("TLS connection closed during the handshake")
    if not slot.handshaking:
        return
    waiter = Waiter(hub)
    slot.handshake_waiter = waiter
    try:
        waiter.get()
    except BaseException:
        slot.handshake_waiter = None
        slot.force_close(report=False)
        raise

