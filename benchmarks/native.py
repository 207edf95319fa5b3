"""Compile the project's C tools: the load generator and the epoll echo server.

Both sources live in ``benchmarks/csrc/`` (``loadgen.c``, ``echo_epoll.c``).
They are compiled with the system C compiler (``$CC``, else ``cc``, else
``gcc``) with ``-O2`` into ``benchmarks/build/`` (git-ignored; another folder
with ``GSOCKET_BENCH_BUILD``) when the binary is missing or older than its
source.  ``--cross-check`` builds a second load generator from any source
path the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Where the sources are, relative to the repository root.
SOURCE_DIR = Path("benchmarks") / "csrc"
#: Environment variable naming another build folder.
BUILD_DIR_ENV = "GSOCKET_BENCH_BUILD"


class BuildError(RuntimeError):
    """A C tool could not be found or compiled."""


def build_dir(repo_root: Path) -> Path:
    """Where compiled tools go: ``$GSOCKET_BENCH_BUILD``, else ``benchmarks/build``. Never blocks."""
    configured = os.environ.get(BUILD_DIR_ENV)
    return Path(configured).expanduser() if configured else repo_root / "benchmarks" / "build"


def loadgen_source(repo_root: Path) -> Path:
    """Path of the project's load generator source, ``benchmarks/csrc/loadgen.c``."""
    return repo_root / SOURCE_DIR / "loadgen.c"


def echo_epoll_source(repo_root: Path) -> Path:
    """Path of the project's C epoll echo server source, ``benchmarks/csrc/echo_epoll.c``."""
    return repo_root / SOURCE_DIR / "echo_epoll.c"


def c_compiler() -> str:
    """The C compiler to use: ``$CC``, else ``cc``, else ``gcc``; BuildError when none is found."""
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise BuildError("no C compiler found (install gcc or set $CC)")


def build(source: Path, binary_name: str, target_dir: Path) -> Path:
    """Compile ``source`` into ``target_dir/binary_name`` unless an up-to-date binary exists.

    Returns the binary's path; blocks while the compiler runs (a second or
    so).  The binary is written under a temporary name and renamed into
    place, so concurrent runs never execute a half-written file.  Raises
    BuildError when the source is missing or does not compile.
    """
    if not source.is_file():
        raise BuildError(f"{source} not found")
    target_dir.mkdir(parents=True, exist_ok=True)
    binary = target_dir / binary_name
    if binary.is_file() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    compiler = c_compiler()
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


def build_loadgen(repo_root: Path) -> Path:
    """The project's load generator binary, compiled if needed (see ``build``)."""
    return build(loadgen_source(repo_root), "loadgen", build_dir(repo_root))


def build_echo_epoll(repo_root: Path) -> Path:
    """The C epoll echo server binary, compiled if needed (see ``build``)."""
    return build(echo_epoll_source(repo_root), "echo_epoll", build_dir(repo_root))
