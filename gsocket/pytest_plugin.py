"""pytest plugin for testing code built on gsocket (entry point ``pytest11``).

Theory of operation
-------------------
The plugin is inert on import: it patches nothing, creates no hub and opens
nothing until a test or an option asks for it. What it offers:

* **Monkey patching done early.** ``--gsocket-patch`` or the ini option
  ``gsocket_monkey_patch = true`` runs ``gevent.monkey.patch_all()`` in
  ``pytest_load_initial_conftests``, before any ``conftest.py`` or test module
  is imported. A process that is already patched (the ``pytest-gevent``
  launcher, ``python -m gevent.monkey -m pytest``) is left alone. Modules that
  were imported too early for patching to be reliable (``ssl``; ``threading``
  with threads besides the main one running) are reported as a
  :class:`GsocketPatchWarning` and in the report header.
* **The** ``gsocket`` **marker.** ``@pytest.mark.gsocket(timeout=5)`` runs
  the test body (not its fixtures) in a gevent greenlet and waits for it at
  most ``timeout`` seconds (ini ``gsocket_timeout``, default 10; 0 = no
  limit). When time is up, the failure lists every greenlet still blocked,
  with its stack, and the test greenlet is killed instead of hanging the run.
  The limit is enforced by the gevent hub, so it catches greenlets blocked
  *cooperatively*; a call that blocks the whole thread (an unpatched socket,
  ``time.sleep`` without patching) is pytest-timeout's business.
* **Fixtures.** ``gsocket_server`` and ``gsocket_driver`` (fresh, released
  after the test), ``free_tcp_port``, ``tcp_peer`` (connected client sockets,
  closed after the test) and ``gsocket_leak_check``.
* **Leak check.** Requested through the ``gsocket_leak_check`` fixture, or for
  every test with the ini option ``gsocket_leak_check = true``. A snapshot of
  open fds and live greenlets is taken before any function-scoped fixture is
  set up (the check hangs off an autouse fixture, and pytest sets autouse
  fixtures up first and tears them down last); after every other fixture has
  been torn down, new fds, new listening TCP sockets and new live greenlets
  fail the test with an error at teardown that lists them. Leftovers get a
  short grace period (:data:`LEAK_GRACE`) to go away, since a killed greenlet
  or a closing socket may need a turn of the hub. A test that already failed
  is not checked, so it is not reported twice.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import logging
import os
import sys
import time
import traceback
import warnings
import weakref
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Generator, Iterable, Iterator, List, Optional,
    Set, Tuple, Union,
)

import pytest

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import socket as _socket_mod

    from greenlet import greenlet as RawGreenlet

    from gsocket.driver import Driver
    from gsocket.server import SocketServer

__all__ = [
    "GsocketPatchWarning", "LeakCheck", "LeakReport", "PatchReport", "PeerClosed",
    "TcpPeerFactory", "DEFAULT_TIMEOUT", "LEAK_GRACE", "PEER_TIMEOUT",
    "blocked_greenlets_report", "patch_gevent",
]

logger = logging.getLogger(__name__)

#: Seconds a ``@pytest.mark.gsocket`` test may run when neither the marker nor
#: the ini option ``gsocket_timeout`` says otherwise (picked to be well under
#: pytest-timeout's usual minute, so our message wins the race).
DEFAULT_TIMEOUT = 10.0
#: Seconds the leak check waits for leftovers to go away before it reports
#: them (a killed greenlet or a closed socket may need a few hub turns).
LEAK_GRACE = 1.0
#: Default timeout of ``tcp_peer`` sockets, so a black-box check never hangs.
PEER_TIMEOUT = 5.0
#: Frames shown per greenlet in timeout and leak reports (innermost kept).
STACK_LIMIT = 25

MARKER = "gsocket"
_MARKER_DOC = (
    "gsocket(timeout=None): run the test body in a gevent greenlet under a "
    "timeout (seconds; None = ini gsocket_timeout, 0 = no limit); on timeout "
    "the failure lists the greenlets still blocked and their stacks"
)


class GsocketPatchWarning(pytest.PytestWarning):
    """gevent monkey patching came too late for some already imported module."""


# --------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--gsocket-patch`` and the ``gsocket_*`` ini options."""
    group = parser.getgroup("gsocket", "gsocket (gevent socket testing)")
    group.addoption(
        "--gsocket-patch", action="store_true", dest="gsocket_patch", default=False,
        help="monkey-patch with gevent.monkey.patch_all() before conftest.py "
             "files and test modules are imported (ini: gsocket_monkey_patch)")
    parser.addini(
        "gsocket_monkey_patch", type="bool", default=False,
        help="monkey-patch with gevent before test modules are imported")
    parser.addini(
        "gsocket_timeout", default=str(DEFAULT_TIMEOUT),
        help="default timeout in seconds of @pytest.mark.gsocket tests (0 = none)")
    parser.addini(
        "gsocket_leak_check", type="bool", default=False,
        help="check every test for leaked fds, listening sockets and greenlets")


# -------------------------------------------------------------------- patching


@dataclasses.dataclass
class PatchReport:
    """What :func:`patch_gevent` did: ``action`` is ``"patched"`` or
    ``"already-patched"``; ``problems`` are the reasons patching may be
    incomplete; ``hook`` names the pytest hook that patched."""

    action: str
    hook: str
    problems: List[str] = dataclasses.field(default_factory=list)


def _patch_sensitive_state() -> List[str]:
    """Describe modules imported too early for ``patch_all`` to be reliable."""
    problems: List[str] = []
    if "ssl" in sys.modules:
        problems.append(
            "ssl was imported before gevent monkey-patched it (by something "
            "loaded before gsocket's plugin: another pytest plugin, sitecustomize "
            "or the launcher); SSLContext subclasses and names bound with "
            "'from ssl import ...' stay unpatched and may block the hub or "
            "recurse. Import ssl later, or patch first with "
            "'python -m gevent.monkey --module pytest'")
    threading_mod = sys.modules.get("threading")
    if threading_mod is not None:
        main = threading_mod.main_thread()
        others = [t for t in threading_mod.enumerate() if t is not main]
        if others:
            names = ", ".join(sorted(repr(t.name) for t in others))
            problems.append(
                f"threading was imported and {len(others)} thread(s) besides the "
                f"main thread were already running before gevent patched it "
                f"({names}); they stay real OS threads and locks they hold are "
                f"not gevent-aware")
    return problems


def patch_gevent(hook: str = "manual") -> PatchReport:
    """Monkey-patch with ``gevent.monkey.patch_all()`` unless the process is
    already patched; return what was done and what looked unsafe."""
    from gevent import monkey

    if monkey.is_anything_patched():
        logger.debug("gevent monkey patching already done; not patching again")
        return PatchReport("already-patched", hook)
    problems = _patch_sensitive_state()
    with warnings.catch_warnings(record=True) as caught:
        # gevent queues its own MonkeyPatchWarning; fold it into our report so
        # the user sees one clear message instead of a bare gevent warning.
        warnings.simplefilter("always")
        monkey.patch_all()
    for item in caught:
        problems.append(f"gevent: {item.message}")
    logger.debug("gevent monkey patching done in %s", hook)
    return PatchReport("patched", hook, problems)


_PATCH_KEY = pytest.StashKey[PatchReport]()


def _patch_requested(config: pytest.Config) -> bool:
    namespace = getattr(config, "known_args_namespace", None)
    flag = bool(getattr(config.option, "gsocket_patch", False)
                or getattr(namespace, "gsocket_patch", False))
    return flag or bool(config.getini("gsocket_monkey_patch"))


def _maybe_patch(config: pytest.Config, hook: str) -> None:
    if _PATCH_KEY in config.stash or not _patch_requested(config):
        return
    report = patch_gevent(hook)
    if hook != "pytest_load_initial_conftests" and report.action == "patched":
        report.problems.insert(0, (
            f"gevent monkey patching ran late, in {hook}: the gsocket plugin was "
            f"not loaded as an installed plugin (entry point) or with -p, so "
            f"conftest.py files were imported before patching"))
    config.stash[_PATCH_KEY] = report
    for problem in report.problems:
        config.issue_config_time_warning(GsocketPatchWarning(problem), stacklevel=2)


# Why this hook: pytest loads ``pytest11`` entry-point plugins in
# Config._preparse() after it has read the ini file and parsed the known
# command-line options, then calls pytest_load_initial_conftests, which is what
# imports the initial conftest.py files (and through them, test modules and
# their imports). The hooks before it (pytest_cmdline_parse, pytest_addhooks,
# pytest_addoption) either run before entry-point plugins are registered or
# before options exist, so this is the earliest hook that is called on an
# entry-point plugin *and* can see --gsocket-patch and the ini option.
# tryfirst puts us ahead of pytest's own conftest loader (trylast) and of any
# other plugin's implementation; the capture plugin's wrapper still surrounds
# us, which is harmless. pytest_configure repeats the attempt for a plugin that
# was registered late (from a conftest's pytest_plugins), where it is the
# earliest hook still to come; then conftest.py itself was imported unpatched.
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Monkey-patch with gevent when asked, before conftests are imported."""
    _maybe_patch(early_config, "pytest_load_initial_conftests")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, validate ini values, patch if still due."""
    config.addinivalue_line("markers", _MARKER_DOC)
    _ini_timeout(config)  # a bad value is a usage error now, not per test
    _maybe_patch(config, "pytest_configure")


def pytest_report_header(config: pytest.Config) -> Optional[List[str]]:
    """Say in the header what monkey patching was done and what went wrong."""
    report = config.stash.get(_PATCH_KEY, None)
    if report is None:
        return None
    if report.action == "already-patched":
        lines = ["gsocket: process already monkey-patched by gevent "
                 "(e.g. the pytest-gevent launcher); not patching again"]
    else:
        lines = [f"gsocket: gevent monkey-patched in {report.hook}"]
    lines += [f"gsocket: WARNING: {problem}" for problem in report.problems]
    return lines


# ------------------------------------------------------------------- greenlets


def _root(glet: "RawGreenlet") -> "RawGreenlet":
    while glet.parent is not None:
        glet = glet.parent
    return glet


def _live_greenlets() -> List["RawGreenlet"]:
    """Greenlets of this thread that are running or scheduled, except the hub
    and the main greenlet (a walk over ``gc.get_objects()``)."""
    import greenlet
    from gevent import Greenlet
    from gevent.hub import Hub

    current = greenlet.getcurrent()
    root = _root(current)
    found = []
    for obj in gc.get_objects():
        if not isinstance(obj, greenlet.greenlet) or obj is current:
            continue
        if obj.parent is None or obj.dead or isinstance(obj, Hub):
            continue
        if obj.gr_frame is None and not (isinstance(obj, Greenlet) and obj.started):
            continue  # created but never started: runs nothing, holds nothing
        if _root(obj) is root:
            found.append(obj)
    return found


_HARNESS_DIRS = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}")


def _noise(entry: traceback.FrameSummary) -> bool:
    """Frames of pytest, pluggy and our test runner: the harness, not the test."""
    if entry.filename == __file__:
        return entry.name in ("body", "run_in_greenlet", "_run_in_greenlet")
    return any(part in entry.filename for part in _HARNESS_DIRS)


def _format_frames(frame: Any, limit: int = STACK_LIMIT) -> str:
    entries = [entry for entry in traceback.extract_stack(frame)
               if not _noise(entry)][-limit:]
    lines: List[str] = []
    for entry in traceback.StackSummary.from_list(entries).format():
        lines.extend("  " + line for line in entry.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n" if lines else ""


def _describe_greenlet(glet: "RawGreenlet", note: str = "") -> str:
    """``repr(glet)`` and its stack (innermost last), plus where it was spawned."""
    from gevent import Greenlet

    text = repr(glet) + (f"  [{note}]" if note else "") + "\n"
    if glet.gr_frame is not None:
        text += _format_frames(glet.gr_frame) or "    (no frames outside the harness)\n"
    elif isinstance(glet, Greenlet) and not glet:
        text += "    (scheduled, not started yet)\n"
    else:
        # On Python 3.11+ greenlet reports no frame for a greenlet suspended
        # before Python materialized its frame objects.
        text += "    (suspended; its stack is not available)\n"
    spawned = getattr(glet, "spawning_stack", None)
    if spawned is not None and note != "the test body":
        where = _format_frames(spawned, limit=8)
        if where:
            text += "  spawned at:\n" + where
    return text


def blocked_greenlets_report(first: Optional["RawGreenlet"] = None,
                             before: Iterable["RawGreenlet"] = ()) -> str:
    """Format every live greenlet of this thread with its stack.

    ``first`` is listed first and tagged as the test body; greenlets in
    ``before`` are tagged as already running before the test.
    """
    earlier = {id(g) for g in before}

    def rank(glet: "RawGreenlet") -> int:
        return 0 if glet is first else 2 if id(glet) in earlier else 1

    notes = ("the test body", "spawned during the test", "already running before the test")
    parts = [_describe_greenlet(glet, notes[rank(glet)])
             for glet in sorted(_live_greenlets(), key=rank)]
    return "\n".join(parts) if parts else "(no live greenlets)\n"


# ---------------------------------------------------------------- gsocket mark


def _parse_timeout(value: Any, where: str) -> Optional[float]:
    """Seconds as a float, None for "no limit" (0); ValueError if invalid."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: timeout must be a number of seconds, "
                         f"got {value!r}") from None
    if not seconds >= 0:  # negative or NaN
        raise ValueError(f"{where}: timeout must be >= 0, got {value!r}")
    return seconds or None


def _ini_timeout(config: pytest.Config) -> Optional[float]:
    try:
        return _parse_timeout(config.getini("gsocket_timeout"), "ini gsocket_timeout")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _marker_timeout(item: pytest.Function, marker: pytest.Mark) -> Optional[float]:
    unknown = set(marker.kwargs) - {"timeout"}
    if unknown or len(marker.args) > 1:
        pytest.fail(f"@pytest.mark.gsocket takes only timeout=, got "
                    f"args={marker.args!r} kwargs={marker.kwargs!r}", pytrace=False)
    value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    if value is None:
        return _ini_timeout(item.config)
    try:
        return _parse_timeout(value, "@pytest.mark.gsocket")
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)


def _run_in_greenlet(item: pytest.Function, func: Callable[..., Any],
                     kwargs: Dict[str, Any], timeout: Optional[float]) -> Any:
    """Run ``func(**kwargs)`` in a new greenlet; wait at most ``timeout``."""
    import gevent

    outcome: Dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = func(**kwargs)
        except BaseException as exc:  # re-raised in the caller, pytest outcomes too
            outcome["error"] = exc

    before = weakref.WeakSet(_live_greenlets())  # weak: keep no greenlet alive
    glet = gevent.Greenlet(body)
    glet.name = f"gsocket-test:{item.name}"
    glet.start()
    try:
        glet.join(timeout)
    except BaseException:
        glet.kill(block=False)  # KeyboardInterrupt and friends: do not wait
        raise
    if not glet.dead:
        report = blocked_greenlets_report(glet, before)
        glet.kill(block=True, timeout=1.0)
        stuck = "" if glet.dead else (
            "\nThe test greenlet ignored GreenletExit and is still running.")
        pytest.fail(
            f"gsocket: {item.name} did not finish within {timeout:g} s "
            f"(@pytest.mark.gsocket timeout); greenlets still blocked, innermost "
            f"call last:\n\n{report}{stuck}", pytrace=False)
    if "error" in outcome:
        error = outcome.pop("error")
        try:
            raise error
        finally:
            del error
    return outcome.get("result")


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    """For ``@pytest.mark.gsocket`` tests, let pytest call a stand-in that runs
    the real test function in a greenlet under the timeout."""
    marker = pyfuncitem.get_closest_marker(MARKER)
    original = pyfuncitem.obj
    if marker is None or inspect.iscoroutinefunction(original) \
            or inspect.isasyncgenfunction(original):
        yield  # unmarked, or async (pytest itself reports those)
        return
    timeout = _marker_timeout(pyfuncitem, marker)

    def run_in_greenlet(**kwargs: Any) -> Any:
        return _run_in_greenlet(pyfuncitem, original, kwargs, timeout)

    pyfuncitem.obj = run_in_greenlet
    try:
        yield
    finally:
        pyfuncitem.obj = original


# ----------------------------------------------------------------- leak check


def _open_fds() -> Dict[int, str]:
    """fd -> what it points to, from /proc/self/fd (the listing's own fd,
    closed by the time we look at it, drops out by itself)."""
    fds: Dict[int, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc (not Linux): nothing to compare
        return fds
    for name in names:
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except (OSError, ValueError):
            continue
    return fds


#: /proc/net/tcp state codes (include/net/tcp_states.h).
_TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}


def _proc_address(text: str) -> str:
    import socket

    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    # The kernel prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw)}:{int(port_hex, 16)}"
    return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{int(port_hex, 16)}"


def _tcp_sockets() -> Dict[str, Tuple[str, str, str]]:
    """Socket inode -> (state, local address, remote address) for TCP sockets
    of this network namespace."""
    table: Dict[str, Tuple[str, str, str]] = {}
    for path in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(path) as proc:
                lines = proc.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                table[fields[9]] = (_TCP_STATES.get(fields[3], fields[3]),
                                    _proc_address(fields[1]), _proc_address(fields[2]))
            except (ValueError, OSError):
                continue
    return table


@dataclasses.dataclass
class LeakReport:
    """What a test left behind: ``fds`` maps fd -> description, ``listeners``
    maps fd -> listening address, ``greenlets`` are the live greenlets."""

    fds: Dict[int, str] = dataclasses.field(default_factory=dict)
    listeners: Dict[int, str] = dataclasses.field(default_factory=dict)
    greenlets: List["RawGreenlet"] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fds or self.listeners or self.greenlets)

    def format(self) -> str:
        """A human-readable listing of every leftover."""
        parts = []
        if self.listeners:
            parts.append("listening TCP sockets left open:\n" + "".join(
                f"  fd {fd}: listening on {address}\n"
                for fd, address in sorted(self.listeners.items())))
        if self.fds:
            parts.append("file descriptors left open:\n" + "".join(
                f"  fd {fd}: {what}\n" for fd, what in sorted(self.fds.items())))
        if self.greenlets:
            parts.append("greenlets still alive:\n" + "".join(
                _describe_greenlet(g) for g in self.greenlets))
        return "\n".join(parts)


class LeakCheck:
    """Leftover detector behind the ``gsocket_leak_check`` fixture.

    :meth:`start` snapshots open fds and live greenlets; :meth:`leaks` lists
    what is new since; :meth:`check` waits up to :attr:`grace` seconds for the
    leftovers to go and fails the test if some stay. :meth:`ignore` exempts
    fds (ints or objects with ``fileno()``) and greenlets the test keeps on
    purpose.
    """

    def __init__(self, grace: float = LEAK_GRACE) -> None:
        self.grace = grace
        self._fds: Set[Tuple[int, str]] = set()
        self._greenlets: "weakref.WeakSet[RawGreenlet]" = weakref.WeakSet()
        self._ignored_fds: Set[Tuple[int, str]] = set()
        self._ignored_greenlets: "weakref.WeakSet[RawGreenlet]" = weakref.WeakSet()
        self._default_driver: Any = None

    def start(self) -> None:
        """Take the "before" snapshot."""
        import gevent

        # The hub opens its loop fds (epoll, eventfd) on first use; make sure
        # that happens before the snapshot, not in the first test that uses it.
        hub = gevent.get_hub()
        self._default_driver = getattr(hub, _HUB_DRIVER_ATTR, None)
        self._fds = set(_open_fds().items())
        self._greenlets = weakref.WeakSet(_live_greenlets())

    def ignore(self, *things: Any) -> None:
        """Do not report these fds, socket-like objects or greenlets."""
        import greenlet

        current = _open_fds()
        for thing in things:
            if isinstance(thing, greenlet.greenlet):
                self._ignored_greenlets.add(thing)
                continue
            fd = thing if isinstance(thing, int) else thing.fileno()
            if fd in current:
                self._ignored_fds.add((fd, current[fd]))

    def leaks(self) -> LeakReport:
        """What is open or alive now that was not at :meth:`start`."""
        report = LeakReport()
        new = set(_open_fds().items()) - self._fds - self._ignored_fds
        tcp = _tcp_sockets() if any(t.startswith("socket:[") for _, t in new) else {}
        for fd, target in sorted(new):
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else ""
            state = tcp.get(inode)
            if state is not None and state[0] == "LISTEN":
                report.listeners[fd] = state[1]
            elif state is not None:
                report.fds[fd] = f"{target} TCP {state[1]} -> {state[2]} {state[0]}"
            else:
                report.fds[fd] = target
        report.greenlets = [g for g in _live_greenlets()
                            if g not in self._greenlets and g not in self._ignored_greenlets]
        return report

    def check(self) -> None:
        """Fail the test if leftovers remain after the grace period."""
        import gevent

        deadline = time.monotonic() + self.grace
        report = self.leaks()
        while report and time.monotonic() < deadline:
            gevent.sleep(0.02)  # let the hub close sockets and unwind greenlets
            report = self.leaks()
        if report:
            text = report.format()
            del report
            driver = getattr(gevent.get_hub(), _HUB_DRIVER_ATTR, None)
            if driver is not None and driver is not self._default_driver \
                    and not getattr(driver, "freed", True):
                text += ("\nhint: gsocket's default driver was created during this "
                         "test (by gsocket.socket/skynet calls) and keeps running; "
                         "use the gsocket_driver fixture to give the test its own, "
                         "freed afterwards.\n")
            pytest.fail("gsocket leak check: the test left these behind "
                        f"(after a {self.grace:g} s grace period):\n\n{text}",
                        pytrace=False)


_CALL_FAILED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Remember whether setup or the call failed, for the leak check."""
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.failed:
        item.stash[_CALL_FAILED_KEY] = True


@pytest.fixture(autouse=True)
def _gsocket_leak_guard(request: pytest.FixtureRequest) -> Iterator[Optional[LeakCheck]]:
    # Autouse, so pytest sets it up before every other function-scoped fixture
    # and tears it down after them: the snapshot brackets the whole test.
    wanted = ("gsocket_leak_check" in request.fixturenames
              or request.config.getini("gsocket_leak_check"))
    if not wanted:
        yield None
        return
    checker = LeakCheck()
    checker.start()
    yield checker
    if request.node.stash.get(_CALL_FAILED_KEY, False):
        logger.debug("%s failed; leak check skipped", request.node.nodeid)
        return
    checker.check()


@pytest.fixture
def gsocket_leak_check(_gsocket_leak_guard: Optional[LeakCheck]) -> LeakCheck:
    """Fail the test (error at teardown) if it leaves fds, listening TCP
    sockets or live greenlets behind. Yields the :class:`LeakCheck`, whose
    ``ignore()`` exempts things kept on purpose and ``check()`` checks now."""
    assert _gsocket_leak_guard is not None
    return _gsocket_leak_guard


# -------------------------------------------------------------------- fixtures


@pytest.fixture
def gsocket_server() -> Iterator["SocketServer"]:
    """A fresh :class:`gsocket.server.SocketServer`, released after the test."""
    from gsocket.server import SocketServer

    server = SocketServer()
    try:
        yield server
    finally:
        server.release()


#: Attribute of the hub where gsocket.driver.default() keeps its driver.
_HUB_DRIVER_ATTR = "_gsocket_driver"


@pytest.fixture
def gsocket_driver() -> Iterator["Driver"]:
    """A fresh :class:`gsocket.driver.Driver` (its own SocketServer and
    dispatcher greenlet), freed after the test.

    For the test's duration it is also the hub's default driver, so
    ``gsocket.socket`` and ``gsocket.skynet`` calls use it, and nothing they
    open outlives the test; the previous default comes back afterwards.
    """
    import gevent

    from gsocket.driver import Driver

    hub = gevent.get_hub()
    previous = getattr(hub, _HUB_DRIVER_ATTR, None)
    driver = Driver()
    setattr(hub, _HUB_DRIVER_ATTR, driver)
    try:
        yield driver
    finally:
        driver.free()
        if getattr(hub, _HUB_DRIVER_ATTR, None) in (driver, None):
            setattr(hub, _HUB_DRIVER_ATTR, previous)


_GIVEN_PORTS: Set[int] = set()


def _free_tcp_port(host: str = "127.0.0.1") -> int:
    import _socket  # never monkey-patched: no hub needed for this

    for _ in range(50):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        finally:
            sock.close()
        if port not in _GIVEN_PORTS:  # no port twice in one session
            _GIVEN_PORTS.add(port)
            return port
    raise RuntimeError("no free TCP port found")


@pytest.fixture
def free_tcp_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (and was not handed
    out before in this session). Bind it promptly: another process could."""
    return _free_tcp_port()


class PeerClosed(EOFError):
    """The peer closed before the expected bytes arrived; ``partial`` holds
    what did arrive."""

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


class _PeerMixin:
    """Helpers added to ``tcp_peer`` sockets; plain ``recv`` stays exact
    because the helpers never read past what they return."""

    def recv_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`PeerClosed` if the peer closes first."""
        data = bytearray()
        while len(data) < n:
            chunk = self.recv(n - len(data))  # type: ignore[attr-defined]
            if not chunk:
                raise PeerClosed(f"peer closed after {len(data)} of {n} bytes", bytes(data))
            data += chunk
        return bytes(data)

    def recv_until(self, sep: bytes = b"\n", limit: int = 1 << 20) -> bytes:
        """Bytes up to ``sep``, returned without it (like gsocket's readline);
        bytes after ``sep`` stay in the socket."""
        import socket

        data = bytearray()
        while True:
            peek = self.recv(65536, socket.MSG_PEEK)  # type: ignore[attr-defined]
            if not peek:
                raise PeerClosed(f"peer closed before {sep!r}", bytes(data))
            start = max(0, len(data) - len(sep) + 1)
            index = (bytes(data) + peek).find(sep, start)
            if index >= 0:
                data += self.recv_exactly(index + len(sep) - len(data))
                return bytes(data[:-len(sep)])
            data += self.recv_exactly(len(peek))
            if len(data) > limit:
                raise ValueError(f"no {sep!r} in the first {len(data)} bytes")

    def recv_all(self) -> bytes:
        """Everything until the peer closes."""
        data = bytearray()
        while True:
            chunk = self.recv(65536)  # type: ignore[attr-defined]
            if not chunk:
                return bytes(data)
            data += chunk


_PEER_CLASSES: Dict[bool, type] = {}
_DEFAULT: Any = object()


def _peer_class(cooperative: bool) -> type:
    cls = _PEER_CLASSES.get(cooperative)
    if cls is None:
        if cooperative:
            import gevent.socket
            base = gevent.socket.socket
        else:
            from gevent.monkey import get_original
            base = get_original("socket", "socket")
        cls = type("PeerSocket", (_PeerMixin, base), {"__module__": __name__})
        _PEER_CLASSES[cooperative] = cls
    return cls


def _split_address(host: Union[str, int, Tuple[str, int]],
                   port: Optional[int]) -> Tuple[str, int]:
    if isinstance(host, tuple):
        return str(host[0]), int(host[1])
    if isinstance(host, int) and port is None:
        return "127.0.0.1", host
    if isinstance(host, str) and port is None:
        name, _, number = host.rpartition(":")
        if not name or not number.isdigit():
            raise ValueError(f"expected 'host:port', got {host!r}")
        return name.strip("[]"), int(number)
    if port is None:
        raise ValueError("port is required")
    return str(host).strip("[]"), int(port)


class TcpPeerFactory:
    """The ``tcp_peer`` fixture: ``tcp_peer(port)``, ``tcp_peer("host", port)``,
    ``tcp_peer("host:port")`` or ``tcp_peer((host, port))`` returns a
    connected blocking client socket with a timeout (default
    :data:`PEER_TIMEOUT`), closed after the test.

    It is a gevent socket by default (``cooperative=True``): the same stdlib
    socket API, but waiting lets the hub run, which a peer in the same thread
    as the server under test needs. ``cooperative=False`` gives the original
    stdlib socket, for servers running in another thread or process. Sockets
    also have ``recv_exactly(n)``, ``recv_until(sep)`` and ``recv_all()``.
    """

    def __init__(self, timeout: Optional[float] = PEER_TIMEOUT,
                 cooperative: bool = True) -> None:
        self.timeout = timeout
        self.cooperative = cooperative
        self.sockets: List["_socket_mod.socket"] = []

    def __call__(self, host: Union[str, int, Tuple[str, int]], port: Optional[int] = None,
                 *, timeout: Any = _DEFAULT, cooperative: Optional[bool] = None) -> Any:
        """Connect and return the peer socket; ``timeout`` (seconds, None =
        no timeout) and ``cooperative`` default to the factory's."""
        import _socket

        address = _split_address(host, port)
        coop = self.cooperative if cooperative is None else cooperative
        cls = _peer_class(coop)
        seconds = self.timeout if timeout is _DEFAULT else timeout
        try:  # numeric addresses need no resolver (and no resolver threads)
            infos = _socket.getaddrinfo(address[0], address[1], 0, _socket.SOCK_STREAM,
                                        0, _socket.AI_NUMERICHOST)
        except _socket.gaierror:
            if coop:
                from gevent.socket import getaddrinfo
            else:
                from gevent.monkey import get_original
                getaddrinfo = get_original("socket", "getaddrinfo")
            infos = getaddrinfo(address[0], address[1], 0, _socket.SOCK_STREAM)
        last_error: Optional[OSError] = None
        for family, kind, proto, _, sockaddr in infos:
            sock = cls(family, kind, proto)
            sock.settimeout(seconds)
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            self.sockets.append(sock)
            return sock
        raise last_error if last_error is not None else OSError(f"cannot resolve {address}")

    def close_all(self) -> None:
        """Close every socket this factory made."""
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                logger.debug("closing peer socket failed", exc_info=True)
        self.sockets.clear()


@pytest.fixture
def tcp_peer() -> Iterator[TcpPeerFactory]:
    """Factory of connected client sockets (see :class:`TcpPeerFactory`),
    all closed after the test."""
    factory = TcpPeerFactory()
    try:
        yield factory
    finally:
        factory.close_all()
