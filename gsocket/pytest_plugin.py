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
import inspect
import logging
import sys
import warnings
import weakref
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Optional,
)

import pytest

from ._greenlet_report import blocked_greenlets_report, live_greenlets
from ._leak_check import LEAK_GRACE, LeakCheck, LeakReport
from ._tcp_peer import PEER_TIMEOUT, PeerClosed, TcpPeerFactory
from ._tcp_peer import free_tcp_port as free_tcp_port_number

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only


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

    before = weakref.WeakSet(live_greenlets())  # weak: keep no greenlet alive
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




@pytest.fixture
def gsocket_driver() -> Iterator["Driver"]:
    """A fresh :class:`gsocket.driver.Driver` (its own SocketServer and
    dispatcher greenlet), freed after the test.

    For the test's duration it is also the hub's default driver, so
    ``gsocket.socket`` and ``gsocket.skynet`` calls use it, and nothing they
    open outlives the test; the previous default comes back afterwards.
    """
    from gsocket.driver import Driver, install_default, installed

    driver = Driver()
    previous = install_default(driver)
    try:
        yield driver
    finally:
        driver.free()
        if installed(driver.hub) in (driver, None):
            install_default(previous, driver.hub)


@pytest.fixture
def free_tcp_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (and was not handed
    out before in this session). Bind it promptly: another process could."""
    return free_tcp_port_number()


@pytest.fixture
def tcp_peer() -> Iterator[TcpPeerFactory]:
    """Factory of connected client sockets (see :class:`TcpPeerFactory`),
    all closed after the test."""
    factory = TcpPeerFactory()
    try:
        yield factory
    finally:
        factory.close_all()
