"""Locate and compile the C tools: the load generator and the epoll echo server.

Sources come from the shared yardstick (``../shared/bench`` next to the
repository, or the paths in ``GSOCKET_LOADGEN_C`` / ``GSOCKET_ECHO_EPOLL_C``);
binaries are built with ``gcc -O2`` into a cache directory
(``GSOCKET_BENCH_CACHE``, default ``~/.cache/gsocket-bench``) and rebuilt
only when the source is newer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LOADGEN_SOURCE_ENV = "GSOCKET_LOADGEN_C"
ECHO_EPOLL_SOURCE_ENV = "GSOCKET_ECHO_EPOLL_C"
CACHE_DIR_ENV = "GSOCKET_BENCH_CACHE"


class BuildError(RuntimeError):
    """A C tool could not be found or compiled."""


def cache_dir() -> Path:
    """Where compiled tools live (created on demand)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gsocket-bench"


def shared_bench_dir(repo_root: Path) -> Path:
    """The shared yardstick folder, ``../shared/bench`` from the repository."""
    return repo_root.parent / "shared" / "bench"


def loadgen_source(repo_root: Path) -> Path:
    """Path of ``loadgen.c`` (env override first)."""
    configured = os.environ.get(LOADGEN_SOURCE_ENV)
    return Path(configured).expanduser() if configured else shared_bench_dir(repo_root) / "loadgen.c"


def echo_epoll_source(repo_root: Path) -> Path:
    """Path of ``echo_epoll.c``: env override, else next to ``loadgen.c``."""
    configured = os.environ.get(ECHO_EPOLL_SOURCE_ENV)
    if configured:
        return Path(configured).expanduser()
    return loadgen_source(repo_root).with_name("echo_epoll.c")


def build(source: Path, binary_name: str) -> Path:
    """Compile ``source`` with ``gcc -O2`` unless an up-to-date binary exists.

    The binary is written under a temporary name and renamed into place, so
    concurrent runs never execute a half-written file.
    """
    if not source.is_file():
        raise BuildError(f"{source} not found (set {LOADGEN_SOURCE_ENV} / {ECHO_EPOLL_SOURCE_ENV})")
    target_dir = cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    binary = target_dir / binary_name
    if binary.is_file() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BuildError("no C compiler (gcc) found to build " + source.name)
    fd, temporary = tempfile.mkstemp(prefix=binary_name + ".", dir=target_dir)
    os.close(fd)
    completed = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", temporary, str(source)], capture_output=True, text=True
    )
    if completed.returncode != 0:
        os.unlink(temporary)
        raise BuildError(f"compiling {source} failed:\n{completed.stderr}")
    os.chmod(temporary, 0o755)
    os.replace(temporary, binary)
    return binary
