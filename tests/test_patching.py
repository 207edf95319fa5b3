"""gsocket in monkey-patched and unpatched processes (real subprocesses)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PATCHED_ECHO = textwrap.dedent('''
    from gevent import monkey
    monkey.patch_all()

    import socket
    import threading

    from gsocket import skynet
    from gsocket import socket as gs


    def handler(connection_id):
        gs.start(connection_id)
        while (line := gs.readline(connection_id)) is not None:
            gs.write(connection_id, line.upper() + b"\\n")
        gs.close(connection_id)


    def main():
        listen_id = gs.listen("127.0.0.1", 0)
        port = gs.address(listen_id)[1]
        gs.start(listen_id, lambda connection_id, addr: skynet.fork(handler, connection_id))

        def legacy_client():
            # A patched "thread" using the patched stdlib socket API.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                reader = client.makefile("rb")
                client.sendall(b"hello\\nworld\\n")
                print(reader.readline().decode().strip(), reader.readline().decode().strip())
                reader.close()
            skynet.exit()

        threading.Thread(target=legacy_client).start()


    skynet.start(main)
    print("done")
''')

UNPATCHED_IMPORT = textwrap.dedent('''
    import socket
    import threading

    import gevent.monkey
    import gevent.socket

    import gsocket, gsocket.socket, gsocket.skynet, gsocket.server, gsocket.driver
    import gsocket.pytest_plugin

    assert not gevent.monkey.is_anything_patched()
    assert socket.socket is not gevent.socket.socket
    assert threading.Thread is gevent.monkey.get_original("threading", "Thread")
    print("unpatched")
''')


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60)


def test_works_in_a_monkey_patched_process():
    result = run(PATCHED_ECHO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["HELLO", "WORLD", "done"]


def test_importing_gsocket_patches_nothing():
    result = run(UNPATCHED_IMPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unpatched"
