"""gsocket.channel against real servers: a gsocket server on the same hub and a
stdlib ThreadingTCPServer in other OS threads (the process is not patched,
so those are real threads). skynet scenarios 52-61, restarts, dead servers,
auth after every reconnect, 10,000 concurrent session requests."""

from __future__ import annotations

import itertools
import socket as stdlib_socket
import socketserver
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import gevent
import gevent.event
import gevent.socket
import pytest

from gsocket import socket as gs
from gsocket.channel import Channel, ChannelError, ChannelSocket, ResponseError
from helpers import closed_port

WAIT = 10.0
TOKEN = b"secret"


# ---------------------------------------------------------------------- the line protocol both servers speak

class State:
    """Server-side facts the tests look at (shared by all connections)."""

    def __init__(self, reverse: bool = False, require_auth: bool = False) -> None:
        self.reverse = reverse            # session mode: answer each batch of lines backwards
        self.require_auth = require_auth
        self.token = TOKEN
        self.connections = 0
        self.auths = 0
        self.requests = 0
        self.lock = threading.Lock()


def answer(state: State, conn: Dict[str, Any], line: bytes) -> Tuple[List[bytes], bool]:
    """Replies (without newline) to one request line, and whether to close.

    ``[S ]CMD args``: with a leading numeric session S (session mode) every
    reply line starts with "S ". Replies: plain data, ``-x`` not ok, ``+x``
    one part of a multi-part reply, ``=x`` its last part."""
    session = b""
    head, _, rest = line.partition(b" ")
    if head.isdigit():
        session, line = head + b" ", rest
    command, _, arg = line.partition(b" ")
    with state.lock:
        state.requests += 1
    if conn.get("stalled"):
        return [], False
    if command == b"STALL":                       # answer nothing more on this connection
        conn["stalled"] = True
        return [], False
    if command == b"AUTH":
        if arg == state.token:
            conn["authed"] = True
            with state.lock:
                state.auths += 1
            return [session + b"OK"], False
        return [session + b"-NO"], False
    if command == b"HANGUP":                      # close at once, no reply
        return [], True
    if state.require_auth and not conn.get("authed"):
        return [session + b"-DENIED"], False
    if command == b"ECHO":
        return [session + arg], False
    if command == b"ERR":
        return [session + b"-" + arg], False
    if command == b"BAD":
        return [session + b"!garbage"], False
    if command == b"MULTI":
        count = int(arg)
        return [session + b"+part%d" % i for i in range(1, count)] + [session + b"=last"], False
    if command == b"BYE":                         # reply, then close
        return [session + b"bye"], True
    if command == b"SLOW":                        # never answered
        return [], False
    if command == b"CONN":
        return [session + b"%d" % state.connections], False
    return [session + b"-unknown " + command], False


def serve_chunks(state: State, conn: Dict[str, Any], buffered: bytes) -> Tuple[bytes, bytes, bool]:
    """(reply bytes, leftover partial line, close?) for what arrived."""
    *lines, rest = buffered.split(b"\n")
    replies: List[List[bytes]] = []
    close = False
    for line in lines:
        out, close = answer(state, conn, line)
        replies.append(out)
        if close:
            break
    if state.reverse:
        replies.reverse()
    return b"".join(r + b"\n" for out in replies for r in out), rest, close


class GsocketServer:
    """The line server on gsocket, same hub as the channel."""

    def __init__(self, state: State, port: int = 0) -> None:
        self.state = state
        self.listen_id = gs.listen("127.0.0.1", port)
        self.port = gs.address(self.listen_id)[1]
        self.ids: List[int] = []
        self.greenlets: List[gevent.Greenlet] = []
        gs.start(self.listen_id, self._accept)

    def _accept(self, socket_id: int, _address: str) -> None:
        with self.state.lock:
            self.state.connections += 1
        self.ids.append(socket_id)
        self.greenlets.append(gevent.spawn(self._serve, socket_id))

    def _serve(self, socket_id: int) -> None:
        gs.start(socket_id)
        conn: Dict[str, Any] = {}
        pending = b""
        while True:
            data = gs.read(socket_id)
            if data is None:
                break
            out, pending, close = serve_chunks(self.state, conn, pending + data)
            if out:
                gs.write(socket_id, out)
            if close:
                break
        gs.close(socket_id)

    def stop(self) -> None:
        gs.close(self.listen_id)
        for socket_id in self.ids:
            gs.shutdown(socket_id)
        gevent.joinall(self.greenlets, timeout=WAIT)


class ThreadServer:
    """The line server as a stdlib ThreadingTCPServer (one OS thread per
    connection), stoppable and restartable on the same port."""

    def __init__(self, state: State, port: int = 0) -> None:
        self.state = state
        self.socks: List[stdlib_socket.socket] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer.state.lock:
                    outer.state.connections += 1
                conn: Dict[str, Any] = {}
                pending = b""
                while True:
                    try:
                        data = self.request.recv(65536)
                        if not data:
                            return
                        out, pending, close = serve_chunks(outer.state, conn, pending + data)
                        if out:
                            self.request.sendall(out)
                    except OSError:
                        return
                    if close:
                        return

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = False        # server_close() joins every handler thread
            block_on_close = True

            def process_request(self, request: Any, client_address: Any) -> None:
                outer.socks.append(request)   # in the serving thread, before the handler runs
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop accepting, reset every connection and wait for the handler
        threads (so every socket is closed and the port is free after)."""
        self.server.shutdown()          # blocks this thread for at most one poll interval
        self.thread.join(WAIT)
        for sock in self.socks:         # wakes handlers blocked in recv
            try:
                sock.shutdown(stdlib_socket.SHUT_RDWR)
            except OSError:
                pass
        self.socks = []
        self.server.server_close()      # closes the listener, joins the handler threads


SERVERS = {"gsocket": GsocketServer, "thread": ThreadServer}


@pytest.fixture
def servers(driver: Any) -> Iterator[Callable[..., Any]]:
    """start(kind, state, port=0) -> a running server, stopped at teardown."""
    started: List[Any] = []

    def start(kind: str, state: State, port: int = 0) -> Any:
        server = SERVERS[kind](state, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def channels(driver: Any) -> Iterator[Callable[..., Channel]]:
    made: List[Channel] = []

    def make(*args: Any, **kwargs: Any) -> Channel:
        kwargs.setdefault("timeout", WAIT)
        channel = Channel(*args, **kwargs)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


# ---------------------------------------------------------------------- response functions

def ordered(sock: ChannelSocket) -> Tuple[Any, ...]:
    """Order mode: one reply line (see answer())."""
    return reply_fields(sock.readline())


def by_session(sock: ChannelSocket) -> Tuple[Any, ...]:
    """Session mode: "S reply"."""
    session, _, line = sock.readline().partition(b" ")
    return (int(session),) + reply_fields(line)


def reply_fields(line: bytes) -> Tuple[Any, ...]:
    if line.startswith(b"!"):
        raise ValueError("bad frame: " + line.decode())
    if line.startswith(b"-"):
        return False, line[1:].decode()
    if line.startswith(b"+"):
        return True, line[1:], True
    if line.startswith(b"="):
        return True, line[1:]
    return True, line


def auth_with(token: bytes, log: Optional[List[Any]] = None,
              session_mode: bool = False) -> Callable[[Channel], None]:
    """An auth hook that logs in with a request of its own."""
    def auth(channel: Channel) -> None:
        if log is not None:
            log.append(channel.address)
        if session_mode:
            channel.request(b"0 AUTH " + token + b"\n", 0)
        else:
            channel.request(b"AUTH " + token + b"\n", ordered)
    return auth


def elapsed(fn: Callable[[], Any]) -> Tuple[float, Any]:
    t0 = time.monotonic()
    try:
        return time.monotonic() - t0, fn()
    except BaseException as exc:  # noqa: BLE001 - handed back
        return time.monotonic() - t0, exc


# ---------------------------------------------------------------------- skynet scenarios 52-61

@pytest.mark.parametrize("kind", SERVERS)
def test_order_mode_each_caller_gets_its_reply(servers: Any, channels: Any, kind: str) -> None:
    server = servers(kind, State())                                   # scenario 52
    ch = channels("127.0.0.1", server.port)
    results: Dict[int, List[bytes]] = {}

    def caller(n: int) -> None:
        results[n] = [ch.request(b"ECHO %d-%d\n" % (n, i), ordered) for i in range(20)]

    gevent.joinall([gevent.spawn(caller, n) for n in range(3)], raise_error=True, timeout=WAIT)
    assert results == {n: [b"%d-%d" % (n, i) for i in range(20)] for n in range(3)}
    assert server.state.connections == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_session_mode_matches_replies_in_any_order(servers: Any, channels: Any, kind: str) -> None:
    server = servers(kind, State(reverse=True))                       # scenario 53
    ch = channels("127.0.0.1", server.port, response=by_session)
    batch = b"".join(b"%d ECHO r%d\n" % (s, s) for s in (1, 2, 3))   # one write: replies come 3, 2, 1
    results: Dict[int, bytes] = {}
    done = gevent.event.Event()

    def waiter(session: int) -> None:
        results[session] = ch.request(b"", session)
        if len(results) == 3:
            done.set()

    waiters = [gevent.spawn(waiter, s) for s in (1, 2, 3)]
    gevent.sleep(0)
    ch.request(batch)                                                 # write only
    assert done.wait(WAIT)
    gevent.joinall(waiters, raise_error=True)
    assert results == {1: b"r1", 2: b"r2", 3: b"r3"}


def test_idle_connection_closed_by_server_reconnects(servers: Any, channels: Any) -> None:
    server = servers("thread", State())                               # scenario 54
    ch = channels("127.0.0.1", server.port)
    assert ch.request(b"BYE\n", ordered) == b"bye"                    # the server closes after this
    gevent.sleep(0.05)                                                # idle: the close may be seen or not
    assert ch.request(b"ECHO again\n", ordered) == b"again"
    assert ch.request(b"CONN\n", ordered) == b"2"
    assert server.state.connections == 2


def test_server_down_fails_at_once_then_connect_retries(servers: Any, channels: Any) -> None:
    port = closed_port()                                              # scenario 55
    ch = channels("127.0.0.1", port, backoff=0.05, max_backoff=0.2)
    took, error = elapsed(lambda: ch.request(b"ECHO x\n", ordered))
    assert isinstance(error, ChannelError) and "refused" in str(error).lower()
    assert took < 2.0
    connector = gevent.spawn(ch.connect, timeout=WAIT)
    gevent.sleep(0.3)
    assert not connector.dead                                         # still retrying
    server = servers("thread", State(), port)
    connector.get(timeout=WAIT)
    assert ch.connected
    assert ch.request(b"ECHO up\n", ordered) == b"up"
    assert server.state.connections == 1


def test_auth_failure_moves_to_the_backup(servers: Any, channels: Any) -> None:
    primary = servers("gsocket", State(require_auth=True))           # scenario 56
    primary.state.token = b"other"
    backup = servers("thread", State(require_auth=True))
    tried: List[Any] = []
    ch = channels("127.0.0.1", primary.port, auth=auth_with(TOKEN, tried),
                  backup=[("127.0.0.1", backup.port), "127.0.0.1"])   # the duplicate is skipped
    assert ch.request(b"ECHO where\n", ordered) == b"where"
    assert tried == [("127.0.0.1", primary.port), ("127.0.0.1", backup.port)]
    assert ch.address == ("127.0.0.1", backup.port)
    assert backup.state.auths == 1 and primary.state.auths == 0


def test_no_more_backup_host(servers: Any, channels: Any) -> None:
    server = servers("thread", State(require_auth=True))
    ch = channels("127.0.0.1", server.port, auth=auth_with(b"wrong"), backup=["localhost"])
    with pytest.raises(ChannelError, match="auth failed"):
        ch.request(b"ECHO x\n", ordered)
    assert server.state.connections == 2                              # primary, then the backup


@pytest.mark.parametrize("kind", SERVERS)
def test_not_ok_reply_keeps_the_connection(servers: Any, channels: Any, kind: str) -> None:
    server = servers(kind, State())                                   # scenario 57
    ch = channels("127.0.0.1", server.port)
    with pytest.raises(ResponseError) as info:
        ch.request(b"ERR x\n", ordered)
    assert info.value.data == "x" and isinstance(info.value, ChannelError)
    assert ch.request(b"ECHO next\n", ordered) == b"next"
    assert server.state.connections == 1


def test_raising_response_fails_everyone_and_reconnects(servers: Any, channels: Any) -> None:
    server = servers("gsocket", State())                              # scenario 58
    ch = channels("127.0.0.1", server.port)
    assert ch.request(b"ECHO warm\n", ordered) == b"warm"
    outcomes: List[Any] = []

    def caller(line: bytes) -> None:
        try:
            outcomes.append(ch.request(line, ordered))
        except ChannelError as exc:
            outcomes.append(exc)

    callers = [gevent.spawn(caller, b"BAD\n")] + [gevent.spawn(caller, b"SLOW\n") for _ in range(3)]
    gevent.joinall(callers, timeout=WAIT)
    assert len(outcomes) == 4 and all(isinstance(o, ChannelError) for o in outcomes)
    assert all("bad frame" in str(o) for o in outcomes)
    assert ch.request(b"ECHO again\n", ordered) == b"again"
    assert server.state.connections == 2


def test_close_fails_pending_session_requests(servers: Any, channels: Any) -> None:
    server = servers("thread", State())                               # scenario 59
    ch = channels("127.0.0.1", server.port, response=by_session)
    assert ch.request(b"1 ECHO a\n", 1) == b"a"
    outcomes: List[Any] = []

    def caller(session: int) -> None:
        try:
            outcomes.append(ch.request(b"%d SLOW\n" % session, session))
        except ChannelError as exc:
            outcomes.append(exc)

    callers = [gevent.spawn(caller, s) for s in range(10, 15)]
    gevent.sleep(0.05)
    ch.close()
    gevent.joinall(callers, timeout=2)
    assert len(outcomes) == 5 and all("channel closed" in str(o) for o in outcomes)
    with pytest.raises(ChannelError, match="closed"):
        ch.request(b"2 ECHO b\n", 2)
    ch.connect(once=True)                                             # skynet: connect reopens
    assert ch.request(b"3 ECHO c\n", 3) == b"c"


def test_overload_reported_and_cleared(channels: Any, driver: Any) -> None:
    listener = gevent.socket.socket()                                 # scenario 60: a server that
    listener.bind(("127.0.0.1", 0))                                   # does not read at first
    listener.listen(1)
    flags: List[bool] = []
    try:
        ch = channels("127.0.0.1", listener.getsockname()[1], overload=flags.append)
        ch.request(b"x")
        conn, _ = listener.accept()
        chunk = b"o" * 65536
        sent = 1
        while not flags:
            ch.request(chunk)
            sent += len(chunk)
            assert sent < 256 * 1024 * 1024
            gevent.sleep(0)
        assert flags == [True]
        got = 0
        while got < sent:
            got += len(conn.recv(1 << 20))
        with gevent.Timeout(WAIT):
            while flags != [True, False]:
                gevent.sleep(0.01)
        conn.close()
    finally:
        listener.close()


def test_multipart_replies(servers: Any, channels: Any) -> None:
    server = servers("thread", State())                               # scenario 61
    ch = channels("127.0.0.1", server.port)
    assert ch.request(b"MULTI 3\n", ordered) == [b"part1", b"part2", b"last"]
    assert ch.request(b"MULTI 1\n", ordered) == b"last"
    sch = channels("127.0.0.1", server.port, response=by_session)
    assert sch.request(b"5 MULTI 3\n", 5) == [b"part1", b"part2", b"last"]
    assert sch.request(b"6 ECHO single\n", 6) == b"single"


# ---------------------------------------------------------------------- reconnects, dead servers, auth

def test_server_restart_mid_traffic(servers: Any, channels: Any) -> None:
    state = State(require_auth=True)
    server = servers("thread", state)
    port = server.port
    auths: List[Any] = []
    ch = channels("127.0.0.1", port, auth=auth_with(TOKEN, auths), backoff=0.02, max_backoff=0.2)
    counter = itertools.count()
    failures: List[ChannelError] = []
    successes_after: List[int] = []
    restarted = gevent.event.Event()
    stop = gevent.event.Event()

    def traffic() -> None:
        while not stop.is_set():
            n = next(counter)
            try:
                assert ch.request(b"ECHO %d\n" % n, ordered) == b"%d" % n
                if restarted.is_set():
                    successes_after.append(n)
            except ChannelError as exc:
                failures.append(exc)
                gevent.sleep(0.01)

    workers = [gevent.spawn(traffic) for _ in range(20)]
    with gevent.Timeout(WAIT):
        while next(counter) < 300:
            gevent.sleep(0.005)
    server.stop()                                                     # in-flight requests fail
    with gevent.Timeout(WAIT):
        while not failures:
            gevent.sleep(0.005)
    server = servers("thread", state, port)                           # back on the same port
    restarted.set()
    with gevent.Timeout(WAIT):
        while len(successes_after) < 200:
            gevent.sleep(0.01)
    stop.set()
    gevent.joinall(workers, raise_error=True, timeout=WAIT)
    assert failures and all(isinstance(f, ChannelError) for f in failures)
    assert state.connections == 2 and state.auths == 2 == len(auths)  # auth after the reconnect


def test_server_gone_callers_fail_within_a_bound(servers: Any, channels: Any) -> None:
    server = servers("gsocket", State())
    ch = channels("127.0.0.1", server.port, backoff=0.05, max_backoff=0.5, connect_timeout=1.0)
    assert ch.request(b"ECHO hi\n", ordered) == b"hi"
    server.stop()
    took: List[float] = []

    def caller() -> None:
        t, outcome = elapsed(lambda: ch.request(b"ECHO x\n", ordered))
        assert isinstance(outcome, ChannelError), outcome
        took.append(t)

    for _ in range(3):                                                # failures raise the backoff ...
        gevent.joinall([gevent.spawn(caller) for _ in range(30)], raise_error=True, timeout=WAIT)
    assert len(took) == 90
    assert max(took) < 0.5 + 1.0 + 1.0                                # ... never past its bound


def test_auth_runs_after_every_reconnect(servers: Any, channels: Any) -> None:
    state = State(require_auth=True, reverse=True)
    server = servers("gsocket", state)
    auths: List[Any] = []
    ch = channels("127.0.0.1", server.port, response=by_session,
                  auth=auth_with(TOKEN, auths, session_mode=True))
    for round_ in range(5):
        assert ch.request(b"%d ECHO r%d\n" % (round_ + 1, round_), round_ + 1) == b"r%d" % round_
        with pytest.raises(ChannelError):
            ch.request(b"99 HANGUP\n", 99)                            # the server drops us
    assert ch.request(b"50 ECHO last\n", 50) == b"last"
    assert len(auths) == state.auths == state.connections == 6


def test_peer_closing_during_auth_fails_the_attempt(servers: Any, channels: Any) -> None:
    server = servers("thread", State())

    def auth(channel: Channel) -> None:
        channel.request(b"HANGUP\n", ordered)

    ch = channels("127.0.0.1", server.port, auth=auth)
    with pytest.raises(ChannelError, match="auth failed"):
        ch.request(b"ECHO x\n", ordered)
    assert not ch.connected


def test_ten_thousand_session_requests_from_100_greenlets(servers: Any, channels: Any) -> None:
    server = servers("thread", State(reverse=True))
    ch = channels("127.0.0.1", server.port, response=by_session, nodelay=True)
    sessions = itertools.count(1)
    mismatches: List[Any] = []

    def caller(n: int) -> int:
        done = 0
        for i in range(100):
            session = next(sessions)
            payload = b"g%d-%d" % (n, i)
            reply = ch.request(b"%d ECHO %s\n" % (session, payload), session)
            if reply != payload:
                mismatches.append((session, payload, reply))
            done += 1
        return done

    callers = [gevent.spawn(caller, n) for n in range(100)]
    gevent.joinall(callers, raise_error=True, timeout=WAIT * 3)
    assert sum(c.value for c in callers) == 10_000
    assert not mismatches
    assert server.state.requests == 10_000 and server.state.connections == 1


# ---------------------------------------------------------------------- timeouts and misuse

def test_order_mode_timeout_drops_the_connection(servers: Any, channels: Any) -> None:
    server = servers("gsocket", State())
    ch = channels("127.0.0.1", server.port)
    assert ch.request(b"ECHO a\n", ordered) == b"a"
    behind: List[Any] = []

    def queued_behind() -> None:
        try:
            behind.append(ch.request(b"ECHO b\n", ordered))
        except ChannelError as exc:
            behind.append(exc)

    slow = gevent.spawn(elapsed, lambda: ch.request(b"STALL\n", ordered, timeout=0.2))
    gevent.sleep(0)
    other = gevent.spawn(queued_behind)
    took, outcome = slow.get(timeout=WAIT)
    assert isinstance(outcome, ChannelError) and "no reply within 0.2" in str(outcome)
    assert 0.15 < took < 2
    other.join(WAIT)
    assert isinstance(behind[0], ChannelError)
    assert ch.request(b"ECHO c\n", ordered) == b"c"
    assert server.state.connections == 2


def test_session_mode_timeout_fails_only_that_request(servers: Any, channels: Any, caplog: Any) -> None:
    server = servers("thread", State())
    ch = channels("127.0.0.1", server.port, response=by_session)
    with pytest.raises(ChannelError, match="no reply"):
        ch.request(b"1 SLOW\n", 1, timeout=0.1)
    assert ch.request(b"2 ECHO fine\n", 2) == b"fine"
    ch.request(b"3 ECHO orphan\n")                                    # nobody waits for session 3
    assert ch.request(b"4 ECHO after\n", 4) == b"after"
    assert any("unknown session 3" in r.getMessage() for r in caplog.records)
    assert server.state.connections == 1


def test_close_interrupts_a_backoff_wait(channels: Any) -> None:
    ch = channels("127.0.0.1", closed_port(), backoff=5.0, max_backoff=5.0)
    with pytest.raises(ChannelError):
        ch.request(b"x\n", ordered)                                   # now 5 s of backoff
    waiter = gevent.spawn(elapsed, lambda: ch.request(b"x\n", ordered))
    gevent.sleep(0.1)
    ch.close()
    took, outcome = waiter.get(timeout=WAIT)
    assert isinstance(outcome, ChannelError) and took < 1.0


def test_arguments(servers: Any, channels: Any) -> None:
    with pytest.raises(ValueError):
        Channel("", 1)
    with pytest.raises(ValueError):
        Channel("127.0.0.1", 0)
    with pytest.raises(ValueError):
        Channel("127.0.0.1", 1, backup=[("h", "p")])
    with pytest.raises(TypeError):
        Channel("127.0.0.1", 1, response=42)           # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Channel("127.0.0.1", 1, timeout=-1)
    server = servers("gsocket", State())
    ch = channels("127.0.0.1", server.port, response=by_session)
    blocker = gevent.spawn(ch.request, b"7 SLOW\n", 7)
    gevent.sleep(0.05)
    with pytest.raises(ValueError, match="already waiting"):
        ch.request(b"7 ECHO x\n", 7)
    ch.close()
    with pytest.raises(ChannelError):
        blocker.get(timeout=WAIT)
    och = channels("127.0.0.1", server.port)
    with pytest.raises(TypeError):
        och.request(b"ECHO x\n", 5)
    with Channel("127.0.0.1", server.port) as cm:
        assert cm.request(b"ECHO cm\n", ordered) == b"cm"
    assert cm.closed and "closed" in repr(cm)


def test_gate_handler_may_call_a_channel(servers: Any, channels: Any) -> None:
    """A request made from a driver callback (a gate handler) hands the
    dispatcher over, so the reply it waits for can still be delivered."""
    from gsocket.gate import Gate
    from gsocket.netpack import pack

    backend = servers("gsocket", State())
    ch = channels("127.0.0.1", backend.port)

    class Proxy:
        gate: Any = None

        def connect(self, socket_id: int, _address: str) -> None:
            self.gate.openclient(socket_id)

        def message(self, socket_id: int, data: bytes) -> None:
            self.gate.send(socket_id, ch.request(b"ECHO " + data + b"\n", ordered))

    proxy = Proxy()
    gate = proxy.gate = Gate(proxy, "127.0.0.1", 0)
    gate.start()
    socks = [gevent.socket.create_connection(gate.address, timeout=WAIT) for _ in range(3)]
    try:
        for n, sock in enumerate(socks):
            sock.sendall(b"".join(pack(b"c%d-%d" % (n, i)) for i in range(10)))
        for n, sock in enumerate(socks):
            reader = sock.makefile("rb")
            got = []
            for _ in range(10):
                size = int.from_bytes(reader.read(2), "big")
                got.append(reader.read(size))
            reader.close()
            assert got == [b"c%d-%d" % (n, i) for i in range(10)]
    finally:
        gate.close()
        for sock in socks:
            sock.close()
    assert backend.state.requests == 30


@pytest.mark.parametrize("mode", ["order", "session"])
def test_channel_left_open_ends_with_its_driver(servers: Any, mode: str) -> None:
    """Nothing of a channel outlives the driver (the leak check of the
    driver fixture fails the test otherwise), even when never closed."""
    server = servers("gsocket", State())
    if mode == "order":
        ch = Channel("127.0.0.1", server.port)
        assert ch.request(b"ECHO idle\n", ordered) == b"idle"
    else:
        ch = Channel("127.0.0.1", server.port, response=by_session)
        assert ch.request(b"1 ECHO idle\n", 1) == b"idle"
    assert ch.connected
