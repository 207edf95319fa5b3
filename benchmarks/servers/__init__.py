"""Reference echo servers the benchmark runner compares gsocket against.

Each module is a standalone program, run from the repository root as
``python -m benchmarks.servers.<module> --host 127.0.0.1 --port PORT``.
Every one echoes with ``recv(65536)`` / ``sendall`` (or the asyncio
equivalent), sets TCP_NODELAY, and prints exactly one line once it listens.
``websocket_gsocket`` and ``websocket_websockets`` are WebSocket echo
servers for ``benchmarks/bench_websocket.py`` instead.
"""
