"""gsocket's benchmark runner: echo servers side by side on one core each.

Run ``python -m benchmarks --help`` from the repository root; see
``benchmarks/README.md`` for the cases and how to read the figures.

Modules, one job each:

- ``cli``            command-line options, wiring, final report
- ``runner``         the interleaved loop: rounds x servers x cases
- ``catalog``        which echo servers exist and how to start each
- ``server_process`` start one server pinned, wait for its port, RSS, stop
- ``placement``      CPU pinning and RLIMIT_NOFILE for child processes
- ``native``         compile the C load generator / epoll server (``csrc/``)
- ``loadgen``        run the load generator and parse its key=value line
- ``cases``          what each case measures and how it is run
- ``results``        measurements, medians over rounds, JSON/TSV files
- ``report``         the text table and the load-generator headroom notes
- ``chart``          the PNG of ratios to gevent
- ``progress``       the progress line on stderr
- ``machine``        facts about the machine and checkout; are the CPUs idle
- ``servers/``       the reference echo servers (gevent, asyncio, uvloop)

Standalone benchmarks beside the runner: ``bench_buffer``, ``bench_netpack``,
``bench_resp``, ``bench_chat`` and ``bench_websocket`` (gsocket.websocket
against the ``websockets`` asyncio server; its servers are
``servers/websocket_*.py``).
"""
