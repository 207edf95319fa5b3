"""Build: metadata in setup.cfg; here, the optional compiled twins of the hot modules.

With Cython and a C compiler present, each module in ``ACCELERATED`` is also
compiled (``gsocket/_stream.py`` -> extension ``gsocket._c_stream``, typed
by ``gsocket/_c_stream.pxd``). Anything missing or failing leaves the
install pure Python, with a warning, never a failed install. Set
GSOCKET_PURE_PYTHON=1 to build nothing. See gsocket/_accelerate.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent

#: The modules on every message's path, lowest first.
ACCELERATED = ["_netutil", "_arguments", "buffer", "_event_channel", "_slot", "_stream",
               "_listener", "_flow_ops", "server", "driver", "_socket_lookup", "_socket_pool",
               "socket"]


def twin_name(module: str) -> str:
    return "gsocket._c_" + module.lstrip("_")


#: twin (extension) name -> the module it is compiled from.
TWINS = {twin_name(module): f"gsocket.{module}" for module in ACCELERATED}


def greenlet_headers() -> list:
    """Where greenlet.h is (inside the greenlet package): the twins read the
    current greenlet through greenlet's C API."""
    spec = importlib.util.find_spec("greenlet")
    if spec is None or spec.origin is None:
        return []
    return [str(Path(spec.origin).parent)]


def extensions() -> list:
    if os.environ.get("GSOCKET_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("gsocket: Cython not found: installing the pure-Python code only", file=sys.stderr)
        return []
    # Cython finds a twin's .pxd by the twin's name, so it cannot tell when
    # one changed: regenerate a module's C when its source or any .pxd is newer.
    newest_pxd = max((path.stat().st_mtime for path in (HERE / "gsocket").glob("_c_*.pxd")),
                     default=0.0)
    compiled = []
    for module in ACCELERATED:
        generated = HERE / "build" / "cython" / "gsocket" / f"{module}.c"
        source = HERE / "gsocket" / f"{module}.py"
        if generated.exists() and generated.stat().st_mtime < max(newest_pxd,
                                                                   source.stat().st_mtime):
            generated.unlink()
        try:
            compiled += cythonize(
                [Extension(twin_name(module), [f"gsocket/{module}.py"],
                           include_dirs=greenlet_headers())],
                build_dir="build/cython", quiet=True,
                compiler_directives={
                    "language_level": 3,
                    "binding": True,             # signatures and docstrings stay inspectable
                    "annotation_typing": False,  # types come from the .pxd files only
                })
        except Exception as err:   # Cython refused this module: it stays pure
            print(f"gsocket: gsocket.{module} not compiled ({err})", file=sys.stderr)
    return compiled


class OptionalBuildExt(build_ext):
    """build_ext that skips what does not compile and records what did."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        self.built: dict = {}
        try:
            super().run()
        except Exception as err:   # no compiler at all, say
            print(f"gsocket: not compiled ({err}): installing the pure-Python code only",
                  file=sys.stderr)
        self.write_hashes()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:
            print(f"gsocket: {ext.name} not compiled ({err}): its pure-Python code runs",
                  file=sys.stderr)
            return
        module = TWINS[ext.name]
        self.built[module] = _source_hash(module)

    def write_hashes(self) -> None:
        """Beside the twins: which source each was built from (checked at import)."""
        if not self.extensions:
            return
        target = Path(self.get_ext_fullpath(self.extensions[0].name)).parent / "_compiled.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        # All or nothing, as at import: the twins type each other's classes.
        built = self.built if len(self.built) == len(ACCELERATED) else {}
        if not built:
            print("gsocket: not every hot module compiled: the pure-Python code runs",
                  file=sys.stderr)
        target.write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")


def _load_accelerate():
    # The same hash that gsocket/_accelerate.py checks at import (loaded by
    # path: the package itself is not importable while it is being built).
    spec = importlib.util.spec_from_file_location("_gsocket_accelerate",
                                                  HERE / "gsocket" / "_accelerate.py")
    accelerate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(accelerate)
    return accelerate


_ACCELERATE = _load_accelerate()


def _source_hash(module: str) -> str:
    return _ACCELERATE.source_hash(HERE / "gsocket", module)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
