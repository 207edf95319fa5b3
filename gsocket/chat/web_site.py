"""The browser door's static files and request routing, sans-I/O.

:class:`WebSite` holds the page shipped in ``gsocket/chat/web/`` (HTML, plain
JavaScript, CSS: package data, read once) and answers one request head at a
time with a :class:`Reply` (status, headers, body), or says that the
request is the WebSocket upgrade at ``/ws``. No sockets here: the door
(:mod:`gsocket.chat.web_door`) reads requests with h11 and writes replies.

Rules: ``GET`` / ``HEAD`` only (anything else: 405 with ``Allow``); ``/`` is
``index.html``; a file of the page by its name; anything else 404. Every
file carries its ``Content-Type``, an ``ETag`` (``If-None-Match`` gives 304)
and ``Cache-Control``: ``no-cache`` for the page itself (always revalidated,
so a new version shows at once) and an hour for its scripts and styles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["WebSite", "Reply", "CONTENT_TYPES", "WEBSOCKET_PATH"]

#: Where the WebSocket of the line protocol lives (docs/chat.md).
WEBSOCKET_PATH = "/ws"

#: Content types by file extension (text is UTF-8).
CONTENT_TYPES: Dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

#: Cache-Control of the page (revalidated every time: cheap with the ETag).
PAGE_CACHE = "no-cache"
#: Cache-Control of the page's scripts, styles and images.
ASSET_CACHE = "public, max-age=3600"

#: Sent with every reply: no sniffing, no framing by other sites, and the
#: page may load only its own files and talk only to its own origin.
SECURITY_HEADERS: Tuple[Tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"),
)

_ALLOWED_METHODS = ("GET", "HEAD")


@dataclass
class Reply:
    """A response to send: ``status``, ``headers`` (name, value) and ``body``
    (empty for HEAD and 304; ``Content-Length`` is in ``headers``)."""

    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    cache_control: str
    etag: str


def _error(status: int, text: str, extra: Iterable[Tuple[str, str]] = ()) -> Reply:
    body = (text + "\n").encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), *SECURITY_HEADERS, *extra]
    return Reply(status, headers, body)


class WebSite:
    """The page's files in memory and the routing of requests to them.

    ``files`` maps a name (``"index.html"``, ``"chat.js"``) to its bytes;
    by default the files shipped in ``gsocket/chat/web/`` are read (once,
    here). Names without a known extension are not served.
    """

    INDEX = "index.html"

    def __init__(self, files: Optional[Mapping[str, bytes]] = None) -> None:
        if files is None:
            files = self.shipped_files()
        self._files: Dict[str, _File] = {}
        for name, body in files.items():
            dot = name.rfind(".")
            content_type = CONTENT_TYPES.get(name[dot:].lower()) if dot > 0 else None
            if content_type is None or "/" in name:
                continue
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            cache = PAGE_CACHE if name == self.INDEX else ASSET_CACHE
            self._files["/" + name] = _File(bytes(body), content_type, cache, etag)
        if "/" + self.INDEX in self._files:
            self._files["/"] = self._files["/" + self.INDEX]

    @staticmethod
    def shipped_files() -> Dict[str, bytes]:
        """The files in the package's ``web`` directory, by name."""
        folder = resources.files("gsocket.chat").joinpath("web")
        return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}

    @property
    def paths(self) -> List[str]:
        """Every path the site serves, sorted."""
        return sorted(self._files)

    @staticmethod
    def path_of(target: str) -> str:
        """The path of a request target (query and fragment dropped)."""
        try:
            return urlsplit(target).path or "/"
        except ValueError:
            return ""

    def is_websocket(self, method: str, target: str) -> bool:
        """True when the request is for the WebSocket endpoint."""
        return method == "GET" and self.path_of(target) == WEBSOCKET_PATH

    def respond(self, method: str, target: str,
                headers: Mapping[str, str] | Iterable[Tuple[str, str]] = ()) -> Reply:
        """The reply to one plain HTTP request (``headers`` with lower-case
        names, or pairs). Never raises on any input."""
        if method not in _ALLOWED_METHODS:
            return _error(405, f"method {method} not allowed", [("Allow", ", ".join(_ALLOWED_METHODS))])
        path = self.path_of(target)
        if not path.startswith("/"):
            return _error(400, "bad request target")
        if path == WEBSOCKET_PATH:
            return _error(426, "this is the chat's WebSocket: connect with a WebSocket client",
                          [("Upgrade", "websocket")])
        found = self._files.get(path)
        if found is None:
            return _error(404, f"not found: {path}")
        wanted = dict(headers) if not isinstance(headers, Mapping) else headers
        common = [("Content-Type", found.content_type), ("Cache-Control", found.cache_control),
                  ("ETag", found.etag), *SECURITY_HEADERS]
        if_none_match = wanted.get("if-none-match")
        if if_none_match is not None and found.etag in [tag.strip() for tag in if_none_match.split(",")]:
            return Reply(304, common)
        length = ("Content-Length", str(len(found.body)))
        return Reply(200, [*common, length], b"" if method == "HEAD" else found.body)
