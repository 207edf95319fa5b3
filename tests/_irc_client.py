"""A raw IRC client for the tests: a gevent socket, lines parsed with the
door's own sans-I/O parser; every message received is kept in ``seen``."""

from __future__ import annotations

from typing import Callable, List, Optional, Union

from chat_helpers import BufferedClient
from gsocket.chat.irc_protocol import Message, parse

WAIT = 10.0

Match = Union[str, Callable[[Message], bool]]


def _matcher(match: Match) -> Callable[[Message], bool]:
    if callable(match):
        return match
    return lambda message: message.command == match


class IrcClient(BufferedClient):
    """Speaks raw IRC to the door."""

    separator = b"\r\n"

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(port, host)
        self.raw: List[bytes] = []
        self.nick = "*"

    def _item(self, raw: bytes) -> Message:
        assert len(raw) + 2 <= 512, f"a message over 512 bytes: {raw[:80]!r}..."
        self.raw.append(raw)
        message = parse(raw)
        assert message is not None, raw
        return message

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def message(self, timeout: float = WAIT) -> Optional[Message]:
        """The next message not consumed yet, or None at EOF."""
        return self._next(timeout)

    def expect(self, match: Match, timeout: float = WAIT) -> Message:
        """Skip to the next message matching ``match`` (a command or numeric, or a predicate)."""
        check = _matcher(match)
        while True:
            message = self.message(timeout)
            assert message is not None, f"EOF while waiting for {match}; seen {self.seen[-8:]}"
            if check(message):
                return message

    def next_is(self, match: Match, timeout: float = WAIT) -> Message:
        """The very next message, which must match ``match``."""
        message = self.message(timeout)
        assert message is not None and _matcher(match)(message), (match, message, self.seen[-8:])
        return message

    def sync(self) -> List[Message]:
        """Send a PING and return what arrived before its PONG (so a test
        can check that nothing else was sent)."""
        token = f"sync{len(self.seen)}"
        self.send(f"PING :{token}")
        before: List[Message] = []
        while True:
            message = self.message()
            assert message is not None, f"EOF before PONG; seen {self.seen[-8:]}"
            if message.command == "PONG" and message.params[-1] == token:
                return before
            before.append(message)

    def register(self, nick: str, cap: bool = True) -> List[Message]:
        """Register as ``nick``; the messages up to the end of the MOTD."""
        if cap:
            self.send("CAP LS 302")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester")
        if cap:
            assert self.next_is("CAP").params == ("*", "LS", "")
            self.send("CAP END")
        got = [self.next_is("001")]
        while got[-1].command not in ("376", "422"):
            message = self.message()
            assert message is not None, got
            got.append(message)
        self.nick = nick
        return got

    def join(self, room: str) -> List[str]:
        """JOIN ``#room``; the nicks of the names reply."""
        self.send(f"JOIN #{room}")
        joined = self.expect("JOIN")
        assert joined.prefix is not None and joined.prefix.startswith(f"{self.nick}!")
        nicks: List[str] = []
        while True:
            message = self.message()
            assert message is not None
            if message.command == "353":
                nicks.extend(message.params[-1].split())
            elif message.command == "366":
                return nicks

    def until_eof(self, timeout: float = WAIT) -> List[Message]:
        rest: List[Message] = []
        while True:
            message = self.message(timeout)
            if message is None:
                return rest
            rest.append(message)
