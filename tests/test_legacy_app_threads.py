"""Legacy code whose threads are real OS threads: gsocket imported into a
process that is NOT monkey-patched (issue 13's "legacy threads calling
socket.write on gsocket ids (they hop onto the hub)" and "a clear warning
when gsocket sees it was imported into an unpatched process whose real
threads call into it").

These need the core's cross-thread calls (branch ``foundation``): before it,
``socket.write`` from a real thread returns False and the data is lost.
Each test runs a real process: the legacy code of examples/legacy_code.py,
real ``threading.Thread`` workers writing to a gsocket connection id.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent('''
    import logging
    import sys
    import threading

    sys.path.insert(0, {examples!r})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="LOG %(levelname)s %(name)s %(message)s")

    import gevent
    import gevent.monkey
    import gevent.socket

    from gsocket import skynet
    from gsocket import socket as gs
    from legacy_code import LegacyClient

    assert not gevent.monkey.is_module_patched("threading")
    THREADS, LINES = 4, 50
    written = []


    def handle(connection_id):
        gs.start(connection_id)
        legacy = LegacyClient("http://127.0.0.1:9")        # only nap() is used: no backend

        def work(index):
            legacy.nap(0.02)                                 # a real, blocking time.sleep
            return index

        def done(index):                                     # runs in the real thread
            for line in range(LINES):
                written.append(gs.write(connection_id, b"t%d %d\\n" % (index, line)))

        workers = [legacy.in_thread(lambda index=index: work(index), done) for index in range(THREADS)]
        assert all(worker.ident != threading.main_thread().ident for worker in workers)
        while any(worker.is_alive() for worker in workers):  # wait, but keep the hub running
            gevent.sleep(0.01)
        gs.close(connection_id)


    def main():
        listen_id = gs.listen("127.0.0.1", 0)
        port = gs.address(listen_id)[1]
        gs.start(listen_id, lambda connection_id, peer: skynet.fork(handle, connection_id))

        def client():
            sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=20)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            sock.close()
            print("RECEIVED", data.decode().replace("\\n", "|"))
            print("WRITTEN", written.count(True), written.count(False))
            skynet.exit()

        skynet.fork(client)


    skynet.start(main)
    print("DONE")
''').format(examples=str(ROOT / "examples"))


def run_unpatched() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)


def test_real_legacy_threads_write_on_gsocket_ids_and_nothing_is_lost():
    result = run_unpatched()
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["WRITTEN"] == "200 0"             # every write from a real thread succeeded
    received = [line for line in lines["RECEIVED"].split("|") if line]
    assert sorted(received) == sorted(f"t{index} {line}" for index in range(4) for line in range(50))
    for index in range(4):                           # each thread's lines in its order
        own = [line for line in received if line.startswith(f"t{index} ")]
        assert own == [f"t{index} {line}" for line in range(50)]
    assert result.stdout.splitlines()[-1] == "DONE"


def test_an_unpatched_process_whose_real_threads_call_in_gets_one_clear_warning():
    result = run_unpatched()
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines()
                if line.startswith("LOG WARNING gsocket")]
    assert len(warnings) == 1, result.stderr           # once per process, though 200 calls came in
    text = warnings[0].lower()
    assert "thread" in text and "patch" in text, warnings[0]
