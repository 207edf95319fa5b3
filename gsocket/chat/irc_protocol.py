"""IRC messages (RFC 1459 / RFC 2812), sans-I/O: framing, parsing, formatting.

:class:`IrcSplitter` turns received bytes into lines (LF or CR LF);
:func:`parse` turns one line into a :class:`Message` (prefix, command,
params, the last one possibly a ``:trailing`` with spaces);
:func:`format_message` and :func:`format_split` do the reverse. Nothing here
touches a socket, and nothing raises on anything a client sends: a line
that is not a message parses to None, and a line that is too long is
reported, in order, as a :class:`TooLong` item.

The 512-byte rule. RFC 1459 section 2.3 and RFC 2812 section 2.3: a message
is at most 512 bytes *including* the CR LF, so at most 510 bytes of
content. Neither RFC says what a server does with a longer one; this door
does what current servers do (the "Modern IRC" client protocol document,
Ergo, InspIRCd): the whole line is dropped, never truncated (a truncated
PRIVMSG would deliver a message the user did not write), and the client
gets ``417 ERR_INPUTTOOLONG``; the connection stays. The splitter keeps at
most 511 bytes of an unfinished line (510 and a CR that may start a CR LF):
past that it only counts the bytes it throws away until the next LF, so
memory stays bounded whatever a client sends. The limit counts IRCv3 tags
too: this server offers no capabilities, so clients send none.

What this server sends obeys the same limit: :func:`format_split` cuts a
long last parameter (a message from a line-protocol user may be 4096
bytes) into as many messages as needed, at UTF-8 character boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

__all__ = [
    "MAX_MESSAGE", "MAX_CONTENT", "MAX_PARAMS", "Message", "TooLong", "IrcSplitter", "parse",
    "decode", "format_message", "format_split", "Numeric",
]

#: Longest message, CR LF included (RFC 1459 / RFC 2812 section 2.3).
MAX_MESSAGE = 512
#: Longest message content: MAX_MESSAGE without the CR LF.
MAX_CONTENT = MAX_MESSAGE - 2
#: Parameters of one message at most (14 middle ones and a trailing one).
MAX_PARAMS = 15

_FORBIDDEN = ("\r", "\n", "\0")
_COMMAND = re.compile(r"(?:[A-Za-z]+|[0-9]{3})\Z")


class Numeric:
    """The numeric replies this server sends (RFC 2812 section 5; 417 and
    005 from current practice)."""

    RPL_WELCOME = "001"
    RPL_YOURHOST = "002"
    RPL_CREATED = "003"
    RPL_MYINFO = "004"
    RPL_ISUPPORT = "005"
    RPL_UMODEIS = "221"
    RPL_ENDOFWHO = "315"
    RPL_LISTSTART = "321"
    RPL_LIST = "322"
    RPL_LISTEND = "323"
    RPL_CHANNELMODEIS = "324"
    RPL_NOTOPIC = "331"
    RPL_TOPIC = "332"
    RPL_WHOREPLY = "352"
    RPL_NAMREPLY = "353"
    RPL_ENDOFNAMES = "366"
    RPL_ENDOFBANLIST = "368"
    RPL_MOTD = "372"
    RPL_MOTDSTART = "375"
    RPL_ENDOFMOTD = "376"
    ERR_NOSUCHNICK = "401"
    ERR_NOSUCHCHANNEL = "403"
    ERR_CANNOTSENDTOCHAN = "404"
    ERR_NORECIPIENT = "411"
    ERR_NOTEXTTOSEND = "412"
    ERR_INPUTTOOLONG = "417"
    ERR_UNKNOWNCOMMAND = "421"
    ERR_NOMOTD = "422"
    ERR_NONICKNAMEGIVEN = "431"
    ERR_ERRONEUSNICKNAME = "432"
    ERR_NICKNAMEINUSE = "433"
    ERR_NOTONCHANNEL = "442"
    ERR_NOTREGISTERED = "451"
    ERR_NEEDMOREPARAMS = "461"
    ERR_ALREADYREGISTRED = "462"
    ERR_CHANOPRIVSNEEDED = "482"
    ERR_UMODEUNKNOWNFLAG = "501"
    ERR_USERSDONTMATCH = "502"


@dataclass(frozen=True)
class Message:
    """One IRC message: ``[:prefix] COMMAND param... [:trailing]``. The
    trailing parameter, if any, is the last of ``params``. Commands are
    upper case once parsed."""

    command: str
    params: Tuple[str, ...] = ()
    prefix: Optional[str] = None

    def param(self, index: int, default: str = "") -> str:
        """The ``index``-th parameter, or ``default`` when there are fewer."""
        return self.params[index] if index < len(self.params) else default


@dataclass(frozen=True)
class TooLong:
    """In :meth:`IrcSplitter.feed`'s output, in place of a line of
    ``length`` bytes (without its CR LF) over :data:`MAX_CONTENT`: it was
    dropped."""

    length: int


class IrcSplitter:
    """Bytes in, lines out (without LF or CR LF), in order, whatever the
    chunking: each item is the line's bytes, or :class:`TooLong` for a line
    that passed ``max_content`` bytes (dropped). Never raises; holds at most
    ``max_content + 1`` bytes."""

    __slots__ = ("max_content", "_buffer", "_dropping", "_last")

    def __init__(self, max_content: int = MAX_CONTENT) -> None:
        self.max_content = max_content
        self._buffer = bytearray()
        #: Bytes of an overlong line dropped so far (None: not dropping).
        self._dropping: Optional[int] = None
        #: The last byte dropped (was it a CR?).
        self._last = 0

    def feed(self, data: bytes) -> List[Union[bytes, TooLong]]:
        """Every whole line completed by ``data``; the rest is kept. Never blocks."""
        out: List[Union[bytes, TooLong]] = []
        data = bytes(data)
        start = 0
        size = len(data)
        limit = self.max_content
        buffer = self._buffer
        while start < size:
            end = data.find(b"\n", start)
            stop = size if end < 0 else end
            if self._dropping is not None:
                if stop > start:
                    self._dropping += stop - start
                    self._last = data[stop - 1]
                if end < 0:
                    return out
                out.append(TooLong(self._dropping - (1 if self._last == 0x0D else 0)))
                self._dropping = None
                self._last = 0
                start = stop + 1
                continue
            buffer += data[start:stop]
            if end < 0:
                # An unfinished line: a trailing CR may be the start of CR LF.
                if len(buffer) > limit + (1 if buffer and buffer[-1] == 0x0D else 0):
                    self._dropping = len(buffer)
                    self._last = buffer[-1]
                    buffer.clear()
                return out
            line = bytes(buffer[:-1]) if buffer and buffer[-1] == 0x0D else bytes(buffer)
            buffer.clear()
            out.append(line if len(line) <= limit else TooLong(len(line)))
            start = stop + 1
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back (at most ``max_content + 1``)."""
        return len(self._buffer)


def decode(raw: bytes) -> str:
    """The text of a line: UTF-8, or Latin-1 when it is not valid UTF-8
    (what older IRC clients send); never raises."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse(line: Union[bytes, str]) -> Optional[Message]:
    """One line (without its LF / CR LF) as a :class:`Message`, or None
    when it holds no command (blank, a bare prefix). IRCv3 message tags
    (``@a=b ...``) are skipped. Never raises."""
    text = decode(line) if isinstance(line, (bytes, bytearray)) else str(line)
    for bad in _FORBIDDEN:
        if bad in text:
            text = text.replace(bad, "")
    rest = text.lstrip(" ")
    if rest.startswith("@"):
        _, _, rest = rest.partition(" ")
        rest = rest.lstrip(" ")
    prefix: Optional[str] = None
    if rest.startswith(":"):
        word, _, rest = rest.partition(" ")
        prefix = word[1:] or None
        rest = rest.lstrip(" ")
    command, _, rest = rest.partition(" ")
    if not command:
        return None
    params: List[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        if len(params) == MAX_PARAMS - 1:      # the 15th parameter takes the rest
            params.append(rest)
            break
        word, _, rest = rest.partition(" ")
        params.append(word)
    return Message(command.upper(), tuple(params), prefix)


def _check(command: str, params: Sequence[str], prefix: Optional[str]) -> None:
    if _COMMAND.match(command) is None:
        raise ValueError(f"bad command {command!r}: letters, or three digits")
    if prefix is not None and (not prefix or " " in prefix):
        raise ValueError(f"bad prefix {prefix!r}")
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{len(params)} parameters (at most {MAX_PARAMS})")
    for index, param in enumerate(params):
        if any(bad in param for bad in _FORBIDDEN):
            raise ValueError(f"CR, LF or NUL in parameter {index}: {param!r}")
        if index < len(params) - 1 and (not param or " " in param or param.startswith(":")):
            raise ValueError(f"bad middle parameter {index}: {param!r}")
    if prefix is not None and any(bad in prefix for bad in _FORBIDDEN):
        raise ValueError(f"CR, LF or NUL in prefix {prefix!r}")


def _head(command: str, params: Sequence[str], prefix: Optional[str]) -> str:
    words = [f":{prefix}"] if prefix is not None else []
    words.append(command)
    words.extend(params)
    return " ".join(words)


def _needs_colon(last: str) -> bool:
    return not last or " " in last or last.startswith(":")


def format_message(command: str, *params: str, prefix: Optional[str] = None) -> bytes:
    """The message as UTF-8 bytes ending in CR LF. The last parameter gets
    a ``:`` when it needs one, and always when it follows others: clients
    such as ii read a PRIVMSG's text only after the ``:``. ValueError for what is no valid message
    (a space or a leading ``:`` in a middle parameter, CR/LF/NUL anywhere)
    or one over :data:`MAX_MESSAGE` bytes (see :func:`format_split`)."""
    _check(command, params, prefix)
    middle, last = params[:-1], params[-1:]
    text = _head(command, middle, prefix)
    if last:
        text += " :" + last[0] if middle or _needs_colon(last[0]) else " " + last[0]
    data = text.encode("utf-8") + b"\r\n"
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes (at most {MAX_MESSAGE})")
    return data


def _cut(data: bytes, budget: int) -> int:
    """Where to cut ``data`` so the first part has at most ``budget`` bytes
    and ends on a UTF-8 character boundary (and, if possible, at a space)."""
    if len(data) <= budget:
        return len(data)
    cut = budget
    while cut > 0 and (data[cut] & 0xC0) == 0x80:    # not inside a character
        cut -= 1
    space = data.rfind(b" ", 0, cut)
    if space > budget // 2:
        return space + 1
    return cut or budget


def format_split(command: str, *params: str, prefix: Optional[str] = None) -> List[bytes]:
    """Like :func:`format_message`, but a last parameter too long for one
    message is cut into several, each message at most :data:`MAX_MESSAGE`
    bytes (the same prefix, command and middle parameters on each). Returns
    at least one message; ValueError as format_message for bad input, or if
    even an empty last parameter does not fit."""
    if not params:
        return [format_message(command, prefix=prefix)]
    _check(command, params, prefix)
    middle, last = params[:-1], params[-1]
    head = (_head(command, middle, prefix) + " :").encode("utf-8")
    budget = MAX_CONTENT - len(head)
    if budget < 4:    # room for one character of UTF-8 at least
        raise ValueError("the prefix, command and middle parameters leave no room")
    data = last.encode("utf-8")
    if len(data) <= budget:
        return [format_message(command, *params, prefix=prefix)]
    out: List[bytes] = []
    while data:
        cut = _cut(data, budget)
        out.append(head + data[:cut] + b"\r\n")
        data = data[cut:]
    return out
