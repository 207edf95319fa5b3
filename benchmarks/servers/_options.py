"""Command-line options shared by the reference echo servers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_server_options(
    description: str, argv: Sequence[str] | None = None, with_uvloop: bool = False
) -> argparse.Namespace:
    """Parse ``--host``, ``--port``, ``--backlog`` (and ``--uvloop`` if asked)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--backlog", type=int, default=1024)
    if with_uvloop:
        parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    return parser.parse_args(argv)


def announce_listening(server_kind: str, host: str, port: int) -> None:
    """Print the single 'listening' line the runner's logs show."""
    print(f"{server_kind} echo listening on {host}:{port}", flush=True)
