"""Tests of gsocket.pytest_plugin.

Most of them are black-box: they write a test module, run pytest on it in a
subprocess through pytest's own ``pytester`` (so patching, hangs and leaks of
the inner run cannot touch this process) and read the outcome and output.
Every inner run has a timeout, and every inner test that could hang carries
the gsocket marker, so nothing here can hang the suite.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import gevent
import gevent.socket
import pytest

from gsocket import _leak_check, _tcp_peer
from gsocket import pytest_plugin as plugin

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
#: Seconds one inner pytest run may take before pytester kills it.
RUN_TIMEOUT = 60

Run = Callable[..., pytest.RunResult]


def _plugin_args() -> List[str]:
    """``-p gsocket.pytest_plugin`` when the entry point is not installed
    (a plain checkout on PYTHONPATH); nothing when it is (loading it twice
    would be an error)."""
    for entry in importlib.metadata.entry_points(group="pytest11"):
        if entry.value == "gsocket.pytest_plugin":
            return []
    return ["-p", "gsocket.pytest_plugin"]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in a subprocess in the pytester directory."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)

    def run(*args: str, launcher: Tuple[str, ...] = ()) -> pytest.RunResult:
        common = ("-p", "no:cacheprovider", *_plugin_args(), *args)
        if launcher:
            return pytester.run(sys.executable, *launcher, "pytest", *common,
                                timeout=RUN_TIMEOUT)
        return pytester.runpytest_subprocess(*common, timeout=RUN_TIMEOUT)

    return run


def _text(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


# ------------------------------------------------------------------ the marker


MARKER_TESTS = """
    import gevent
    import greenlet
    import pytest
    from gsocket.events import SOCKET_ACCEPT, SOCKET_DATA, SOCKET_OPEN

    SEEN = {}

    @pytest.fixture
    def where():
        SEEN["setup"] = greenlet.getcurrent()
        yield
        SEEN["teardown"] = greenlet.getcurrent()

    @pytest.mark.gsocket(timeout=5)
    def test_body_runs_in_a_greenlet(where):
        current = gevent.getcurrent()
        assert isinstance(current, gevent.Greenlet)
        assert current.name == "gsocket-test:test_body_runs_in_a_greenlet"
        assert SEEN["setup"].parent is None       # fixtures: the main greenlet

    def test_unmarked_runs_as_usual_and_nothing_is_patched():
        import gevent.monkey
        assert greenlet.getcurrent().parent is None
        assert not gevent.monkey.is_anything_patched()

    @pytest.mark.gsocket(timeout=5)
    def test_server_fixtures(gsocket_server, free_tcp_port, tcp_peer):
        srv = gsocket_server
        listen_id = srv.listen("127.0.0.1", free_tcp_port)
        srv.start(listen_id)
        assert srv.poll(1).type == SOCKET_OPEN
        peer = tcp_peer(free_tcp_port)
        accept = srv.poll(1)
        assert accept.type == SOCKET_ACCEPT
        srv.start(accept.ud)
        assert srv.poll(1).type == SOCKET_OPEN
        peer.sendall(b"ping")
        data = srv.poll(1)
        assert (data.type, data.data) == (SOCKET_DATA, b"ping")
        srv.send(accept.ud, b"pong\\n")
        assert peer.recv_until(b"\\n") == b"pong"

    @pytest.mark.gsocket(1)
    def test_positional_timeout():
        gevent.sleep(0)

    @pytest.mark.gsocket(timeout=5)
    def test_skip_inside():
        pytest.skip("skipped from the greenlet")

    @pytest.mark.gsocket(timeout=5)
    def test_assert_inside():
        value = 1
        assert value == 2

    @pytest.mark.gsocket(timeout=5)
    def test_raise_inside():
        raise KeyError("raised in the test greenlet")

    @pytest.mark.gsocket(timout=5)
    def test_misspelt_marker():
        pass
"""


def test_marked_tests_run_in_a_greenlet_with_normal_outcomes(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_inner=textwrap.dedent(MARKER_TESTS))
    result = run("-rA", "--strict-markers")
    result.assert_outcomes(passed=4, skipped=1, failed=3)
    text = _text(result)
    assert "assert 1 == 2" in text
    assert re.search(r"test_inner\.py:\d+: AssertionError", text)
    assert "KeyError: 'raised in the test greenlet'" in text
    assert "@pytest.mark.gsocket takes only timeout=" in text
    # Tracebacks start at the test, not in the plugin or gevent.
    assert "pytest_plugin.py" not in text


# ------------------------------------------------------------------- timeouts


HANGING_TESTS = """
    import gevent
    import pytest

    @pytest.mark.gsocket(timeout=0.5)
    def test_hangs(gsocket_server):
        def stuck_reader():
            gsocket_server.poll()          # no event will ever come
        reader = gevent.spawn(stuck_reader)
        reader.join()

    @pytest.mark.gsocket
    def test_ini_default():
        gevent.sleep(60)

    def test_runs_afterwards():
        pass
"""


def test_hanging_test_fails_naming_blocked_greenlets(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeini("[pytest]\ngsocket_timeout = 0.3\n")
    pytester.makepyfile(test_inner=textwrap.dedent(HANGING_TESTS))
    started = time.monotonic()
    result = run()
    assert time.monotonic() - started < RUN_TIMEOUT / 2
    result.assert_outcomes(passed=1, failed=2)
    text = _text(result)
    assert "test_hangs did not finish within 0.5 s" in text
    assert "test_ini_default did not finish within 0.3 s" in text
    # The test greenlet, where it is blocked ...
    assert re.search(r'gsocket-test:test_hangs".*\[the test body\]', text)
    assert "reader.join()" in text
    # ... and the greenlet it waits for, with its stack.
    assert re.search(r"stuck_reader>\s+\[spawned during the test\]", text)
    assert "gsocket_server.poll()" in text
    assert "gevent.sleep(60)" in text


# ----------------------------------------------------------------- leak check


LEAKY_TESTS = """
    import os
    import socket

    import gevent
    import pytest

    KEEP = []

    def test_leaks(gsocket_leak_check):
        KEEP.append(os.open(os.devnull, os.O_RDONLY))
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        KEEP.append(listener)
        def leaky_sleeper():
            gevent.sleep(3600)
        KEEP.append(gevent.spawn(leaky_sleeper))

    @pytest.mark.gsocket(timeout=5)
    def test_clean(gsocket_leak_check, gsocket_server, gsocket_driver,
                   free_tcp_port, tcp_peer):
        from gsocket import socket as gsock
        listen_id = gsocket_server.listen("127.0.0.1", free_tcp_port)
        gsocket_server.start(listen_id)
        tcp_peer(free_tcp_port)
        gsock.listen("127.0.0.1", 0)           # on gsocket_driver, freed after
        gevent.spawn(gevent.sleep, 0.2)         # ends within the grace period

    def test_ignored(gsocket_leak_check):
        fd = os.open(os.devnull, os.O_RDONLY)
        glet = gevent.spawn(gevent.sleep, 3600)
        KEEP.extend([fd, glet])
        gsocket_leak_check.ignore(fd, glet)

    def test_failing_test_is_not_leak_checked(gsocket_leak_check):
        KEEP.append(os.open(os.devnull, os.O_RDONLY))
        assert False, "failing on purpose"

    def test_not_checked_without_the_fixture():
        KEEP.append(os.open(os.devnull, os.O_RDONLY))

    def test_default_driver_hint(gsocket_leak_check, free_tcp_port):
        from gsocket import socket as gsock
        gsock.listen("127.0.0.1", free_tcp_port)
"""


def test_leak_check_lists_fds_listeners_and_greenlets(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makepyfile(test_inner=textwrap.dedent(LEAKY_TESTS))
    result = run()
    result.assert_outcomes(passed=5, failed=1, errors=2)
    text = _text(result)
    torn = re.findall(r"ERROR at teardown of (\w+)", text)
    assert sorted(torn) == ["test_default_driver_hint", "test_leaks"]
    leaks = text.split("ERROR at teardown of test_leaks")[1].split("ERROR at teardown")[0]
    assert re.search(r"listening TCP sockets left open:\n\s+fd \d+: listening on 127\.0\.0\.1:\d+",
                     leaks)
    assert re.search(r"file descriptors left open:\n\s+fd \d+: /dev/null", leaks)
    assert re.search(r"greenlets still alive:\n<Greenlet at 0x[0-9a-f]+: leaky_sleeper>", leaks)
    assert "gevent.sleep(3600)" in leaks                    # its stack
    assert "spawned at:" in leaks and "KEEP.append(gevent.spawn(leaky_sleeper))" in leaks
    assert "hint: gsocket's default driver was created during this test" in text


def test_leak_check_ini_applies_to_every_test(pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeini("[pytest]\ngsocket_leak_check = true\n")
    pytester.makepyfile(test_inner="""
        import os
        KEEP = []

        def test_leaks_without_asking():
            KEEP.append(os.open(os.devnull, os.O_RDONLY))

        def test_clean():
            pass
    """)
    result = run()
    result.assert_outcomes(passed=2, errors=1)
    assert re.findall(r"ERROR at teardown of (\w+)", _text(result)) == ["test_leaks_without_asking"]


# ------------------------------------------------------------------- patching


PATCH_CONFTEST = """
    import socket

    import gevent.socket
    import pytest

    PATCHED_AT_IMPORT = socket.socket is gevent.socket.socket

    @pytest.fixture
    def conftest_was_patched():
        return PATCHED_AT_IMPORT
"""

PATCH_TEST = """
    import socket
    import time

    import gevent.monkey
    import gevent.socket

    def test_patched(conftest_was_patched):
        assert conftest_was_patched
        assert socket.socket is gevent.socket.socket
        assert gevent.monkey.is_module_patched("threading")
        assert gevent.monkey.is_module_patched("time")
"""


@pytest.mark.parametrize("how", ["flag", "ini"])
def test_patching_happens_before_conftest_and_tests(
        pytester: pytest.Pytester, run: Run, how: str) -> None:
    pytester.makeconftest(textwrap.dedent(PATCH_CONFTEST))
    pytester.makepyfile(test_inner=textwrap.dedent(PATCH_TEST))
    if how == "ini":
        pytester.makeini("[pytest]\ngsocket_monkey_patch = true\n")
        result = run()
    else:
        result = run("--gsocket-patch")
    result.assert_outcomes(passed=1)
    text = _text(result)
    assert "gsocket: gevent monkey-patched in pytest_load_initial_conftests" in text
    assert "GsocketPatchWarning" not in text and "WARNING" not in text


def test_patching_warns_about_ssl_and_threads_imported_first(
        pytester: pytest.Pytester, run: Run) -> None:
    # A plugin loaded with -p is imported before the entry-point plugins.
    pytester.makepyfile(early_imports="""
        import ssl
        import threading
        import time

        threading.Thread(target=time.sleep, args=(30,), name="early-worker",
                         daemon=True).start()
    """)
    pytester.makeconftest(textwrap.dedent(PATCH_CONFTEST))
    pytester.makepyfile(test_inner=textwrap.dedent(PATCH_TEST))
    result = run("-p", "early_imports", "--gsocket-patch")
    result.assert_outcomes(passed=1, warnings=2)
    text = _text(result)
    assert "GsocketPatchWarning: ssl was imported before gevent monkey-patched it" in text
    assert "gsocket: WARNING: ssl was imported before gevent monkey-patched it" in text
    assert re.search(r"GsocketPatchWarning: threading was imported and 1 thread\(s\) "
                     r"besides the main thread.*'early-worker'", text)


def test_an_already_patched_process_is_not_patched_again(
        pytester: pytest.Pytester, run: Run) -> None:
    pytester.makeconftest(textwrap.dedent(PATCH_CONFTEST))
    pytester.makepyfile(test_inner=textwrap.dedent(PATCH_TEST))
    result = run("--gsocket-patch", launcher=("-m", "gevent.monkey", "--module"))
    result.assert_outcomes(passed=1)
    text = _text(result)
    assert "gsocket: process already monkey-patched by gevent" in text
    assert "monkey-patched in pytest_load_initial_conftests" not in text


def test_a_plugin_loaded_from_conftest_patches_late_and_says_so(
        pytester: pytest.Pytester, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["gsocket.pytest_plugin"]')
    pytester.makepyfile(test_inner="""
        import socket
        import gevent.socket

        def test_patched():
            assert socket.socket is gevent.socket.socket
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gsocket-patch",
                                           timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=1, warnings=1)
    text = _text(result)
    assert "gsocket: gevent monkey-patched in pytest_configure" in text
    assert "GsocketPatchWarning: gevent monkey patching ran late, in pytest_configure" in text


def test_importing_the_plugin_is_inert() -> None:
    code = textwrap.dedent("""
        import gsocket.pytest_plugin
        import gevent.monkey
        from gevent._hub_local import get_hub_if_exists
        assert not gevent.monkey.is_anything_patched()
        assert get_hub_if_exists() is None
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False,
                          text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------- docs


def _doc_files() -> Dict[str, str]:
    """The python blocks of docs/testing.md, keyed by their ``# name.py`` line."""
    text = (REPO / "docs" / "testing.md").read_text()
    files = {}
    for block in re.findall(r"```python\n(# [\w.]+\.py\n.*?)```", text, re.S):
        name = block.splitlines()[0].lstrip("# ").strip()
        files[name] = block
    return files


def test_docs_example_runs(pytester: pytest.Pytester, run: Run) -> None:
    files = _doc_files()
    assert set(files) == {"echo_app.py", "test_echo.py"}
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source)
    result = run()
    result.assert_outcomes(passed=3)


# ----------------------------------------------- fixtures and helpers, in-process


def test_free_tcp_port_is_free_and_not_repeated(free_tcp_port: int) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_tcp_port))
    more = {plugin.free_tcp_port_number() for _ in range(5)}
    assert len(more) == 5 and free_tcp_port not in more


@pytest.fixture
def chunk_server() -> Iterator[Tuple[int, List[bytes]]]:
    """A gevent listener that sends the queued chunks, 10 ms apart, then closes."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    chunks: List[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for chunk in chunks:
                conn.sendall(chunk)
                gevent.sleep(0.01)

    server = gevent.spawn(serve)
    yield listener.getsockname()[1], chunks
    server.kill()
    listener.close()


@pytest.mark.gsocket(timeout=5)
def test_tcp_peer_helpers(chunk_server: Tuple[int, List[bytes]],
                          tcp_peer: plugin.TcpPeerFactory,
                          gsocket_leak_check: plugin.LeakCheck) -> None:
    port, chunks = chunk_server
    chunks.extend([b"hel", b"lo\r", b"\nwor", b"ld\r\nab", b"cdef", b"tail"])
    peer = tcp_peer("127.0.0.1", port)
    assert peer.gettimeout() == plugin.PEER_TIMEOUT
    assert peer.recv_until(b"\r\n") == b"hello"      # sep split across chunks
    assert peer.recv_until(b"\r\n") == b"world"
    assert peer.recv_exactly(4) == b"abcd"
    assert peer.recv(2) == b"ef"                       # helpers never over-read
    with pytest.raises(plugin.PeerClosed) as closed:
        peer.recv_exactly(10)
    assert closed.value.partial == b"tail"
    assert peer.recv_all() == b""


@pytest.mark.gsocket(timeout=5)
def test_tcp_peer_address_forms_and_refusal(tcp_peer: plugin.TcpPeerFactory,
                                            free_tcp_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        tcp_peer(free_tcp_port)
    with pytest.raises(ValueError):
        tcp_peer("no-port-here")
    assert tcp_peer.sockets == []


@pytest.mark.parametrize("args, expected", [
    ((8080, None), ("127.0.0.1", 8080)),
    (("localhost:81", None), ("localhost", 81)),
    (("[::1]:82", None), ("::1", 82)),
    ((("10.0.0.1", 83), None), ("10.0.0.1", 83)),
    (("example.org", 84), ("example.org", 84)),
])
def test_peer_address_forms(args: Tuple[object, object], expected: Tuple[str, int]) -> None:
    assert _tcp_peer._split_address(*args) == expected  # type: ignore[arg-type]


def test_proc_net_tcp_addresses() -> None:
    assert _leak_check._proc_address("0100007F:1F90") == "127.0.0.1:8080"
    assert _leak_check._proc_address("00000000000000000000000001000000:0050") == "[::1]:80"


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_timeouts_are_rejected(value: str) -> None:
    with pytest.raises(ValueError):
        plugin._parse_timeout(value, "test")


def test_zero_timeout_means_no_limit() -> None:
    assert plugin._parse_timeout("0", "test") is None
    assert plugin._parse_timeout(2, "test") == 2.0
