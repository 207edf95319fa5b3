"""Reference: asyncio streams echo (``start_server``, ``read(65536)``,
``write`` + ``await drain()``); ``--uvloop`` runs the same code on uvloop.

asyncio's and uvloop's TCP transports set TCP_NODELAY themselves.
Run: ``python -m benchmarks.servers.asyncio_streams --port 9000 [--uvloop]``
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from benchmarks.servers._options import announce_listening, parse_server_options

RECV_SIZE = 65536


async def echo_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo everything read until the peer closes the connection."""
    read, write, drain = reader.read, writer.write, writer.drain
    try:
        while True:
            data = await read(RECV_SIZE)
            if not data:
                break
            write(data)
            await drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, backlog: int, loop_kind: str) -> None:
    """Start the server, announce it, and serve until cancelled."""
    server = await asyncio.start_server(echo_connection, host, port, backlog=backlog)
    bound_port = server.sockets[0].getsockname()[1]
    announce_listening(f"asyncio streams ({loop_kind})", host, bound_port)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    """Run on asyncio's default loop, or on uvloop with ``--uvloop``."""
    options = parse_server_options(__doc__ or "", argv, with_uvloop=True)
    if options.uvloop:
        import uvloop

        uvloop.run(serve(options.host, options.port, options.backlog, "uvloop"))
    else:
        asyncio.run(serve(options.host, options.port, options.backlog, "asyncio"))


if __name__ == "__main__":
    main()
