"""Reference: the ``websockets`` package's asyncio echo server (its
``websockets.asyncio.server.serve``), for ``benchmarks/bench_websocket.py``.

``async for message in ws: await ws.send(message)``; compression off (gsocket
negotiates no extension, so both servers frame the same bytes); the same
1 MiB message limit. ``--uvloop`` runs it on uvloop.
Run: ``python -m benchmarks.servers.websocket_websockets --port 9000 [--uvloop]``
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection, serve

from benchmarks.servers._options import announce_listening, parse_server_options

MAX_MESSAGE = 1 << 20


async def echo(ws: ServerConnection) -> None:
    """Send every message back until the peer closes."""
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:   # noqa: BLE001 - a dropped benchmark connection is not news
        pass


async def run(host: str, port: int, backlog: int, loop_kind: str) -> None:
    """Start the server, announce it, and serve until cancelled."""
    async with serve(echo, host, port, backlog=backlog, compression=None, max_size=MAX_MESSAGE,
                     ping_interval=None) as server:
        bound_port = next(iter(server.sockets)).getsockname()[1]
        announce_listening(f"websockets asyncio ({loop_kind})", host, bound_port)
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    """Run on asyncio's default loop, or on uvloop with ``--uvloop``."""
    options = parse_server_options(__doc__ or "", argv, with_uvloop=True)
    try:
        if options.uvloop:
            import uvloop

            uvloop.run(run(options.host, options.port, options.backlog, "uvloop"))
        else:
            asyncio.run(run(options.host, options.port, options.backlog, "asyncio"))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
