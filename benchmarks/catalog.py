"""The echo servers the runner knows, and how to start each one.

The reference servers live in ``benchmarks/servers/``, the C ceiling in
``benchmarks/csrc/echo_epoll.c``; gsocket's servers are the two echo examples
and a netpack gate echo (``benchmarks/servers/gate_echo.py``, with ``--frames``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The server every ratio is computed against.
REFERENCE_SERVER = "gevent"
#: The C server showing what the load generator can drive at most.
CEILING_SERVER = "echo_epoll"


@dataclass(frozen=True)
class ServerSpec:
    """How to start one echo server.

    ``command(port)`` gives the argv (run from the repository root);
    ``unavailable`` is None when the server can run, else why it cannot.
    """

    name: str
    description: str
    command: Callable[[int], list[str]]
    unavailable: str | None = None


def _missing_file(path: Path, repo_root: Path) -> str | None:
    if path.is_file():
        return None
    return f"{path.relative_to(repo_root)} does not exist (yet)"


def _missing_module(module: str) -> str | None:
    if importlib.util.find_spec(module) is not None:
        return None
    return f"python module {module!r} is not installed (pip install -e '.[bench]')"


def server_catalog(
    python: str,
    repo_root: Path,
    echo_epoll_binary: Path | None,
    echo_epoll_problem: str | None,
    host: str = "127.0.0.1",
    frames: bool = False,
) -> dict[str, ServerSpec]:
    """All known servers, in report order: ceiling, references, then gsocket."""

    def module_command(module: str, *extra: str) -> Callable[[int], list[str]]:
        return lambda port: [python, "-m", module, "--host", host, "--port", str(port), *extra]

    def example_command(script: Path) -> Callable[[int], list[str]]:
        return lambda port: [
            python,
            str(script.relative_to(repo_root)),
            "--host",
            host,
            "--port",
            str(port),
        ]

    echo_example = repo_root / "examples" / "echo.py"
    events_example = repo_root / "examples" / "echo_events.py"
    specs = [
        ServerSpec(
            CEILING_SERVER,
            "C epoll echo (load generator ceiling)",
            lambda port: [str(echo_epoll_binary), "--port", str(port)],
            echo_epoll_problem if echo_epoll_binary is None else None,
        ),
        ServerSpec(
            REFERENCE_SERVER,
            "gevent StreamServer (reference)",
            module_command("benchmarks.servers.gevent_stream"),
            _missing_module("gevent"),
        ),
        ServerSpec(
            "gevent_raw",
            "gevent accept loop",
            module_command("benchmarks.servers.gevent_accept_loop"),
            _missing_module("gevent"),
        ),
        ServerSpec("asyncio", "asyncio streams", module_command("benchmarks.servers.asyncio_streams")),
        ServerSpec(
            "uvloop",
            "asyncio streams on uvloop",
            module_command("benchmarks.servers.asyncio_streams", "--uvloop"),
            _missing_module("uvloop"),
        ),
        ServerSpec(
            "gsocket",
            "gsocket socket API (examples/echo.py)",
            example_command(echo_example),
            _missing_file(echo_example, repo_root),
        ),
        ServerSpec(
            "gsocket_events",
            "gsocket events (examples/echo_events.py)",
            example_command(events_example),
            _missing_file(events_example, repo_root),
        ),
        ServerSpec(
            "gsocket_gate",
            "gsocket netpack gate echo (gsocket.gate)",
            module_command("benchmarks.servers.gate_echo"),
            None if frames else "it echoes netpack frames: run with --frames",
        ),
    ]
    return {spec.name: spec for spec in specs}
