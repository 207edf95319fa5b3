"""The compiled twins of the hot modules (Cython), used when they were built.

The hot modules are plain Python and stay the reference: they are what runs
without a C compiler, and what the `.pxd` files beside them type when
`setup.py` compiles them (``gsocket/_stream.py`` becomes the extension
module ``gsocket._c_stream``, typed by ``gsocket/_c_stream.pxd``, the way
gevent builds its own). Each hot module ends with::

    use_compiled(globals(), "gsocket._c_stream")

which, when the twins were built from this very source and
``GSOCKET_PURE_PYTHON`` is not set, replaces the module's names with the
twin's, so that every importer gets the compiled classes and functions.
All or nothing: the twins subclass and type each other's classes, so when
any hot module changed since the last build (its source no longer has the
hash recorded then), no twin is used, a warning says so, and the pure code
runs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["PURE_PYTHON", "HASHES_FILE", "use_compiled", "code_module", "compiled_modules", "source_hash"]

logger = logging.getLogger("gsocket")

#: Set GSOCKET_PURE_PYTHON (to anything but "" or "0") to never use a twin.
PURE_PYTHON = os.environ.get("GSOCKET_PURE_PYTHON", "") not in ("", "0")

#: Written by setup.py beside the twins: module name -> hash of its source.
HASHES_FILE = "_compiled.json"

# Module name -> twin name, for every module that runs compiled.
_in_use: Dict[str, str] = {}
_built_hashes: Optional[Dict[str, str]] = None

# Names a module keeps as its own when it takes its twin's.
_OWN_NAMES = frozenset(("__name__", "__file__", "__spec__", "__loader__", "__package__",
                        "__cached__", "__builtins__", "__path__"))


def source_hash(package: Path, module_name: str) -> str:
    """The sha256 (hex) of a hot module's source and its twin's .pxd: how
    a twin is matched to what it was built from. OSError if the source is
    missing."""
    short = module_name.rpartition(".")[2]
    digest = hashlib.sha256((package / f"{short}.py").read_bytes())
    pxd = package / f"_c_{short.lstrip('_')}.pxd"
    if pxd.exists():
        digest.update(pxd.read_bytes())
    return digest.hexdigest()


def _hashes() -> Dict[str, str]:
    """Module name -> source hash of the twins that may be used: all built,
    or none when any source changed since (or nothing was built)."""
    global _built_hashes
    if _built_hashes is None:
        try:
            text = (Path(__file__).parent / HASHES_FILE).read_text()
            built = dict(json.loads(text))
        except (OSError, ValueError):
            built = {}
        package = Path(__file__).parent
        changed = sorted(name for name, digest in built.items()
                         if not _matches(package, name, digest))
        if changed:
            logger.warning("%s changed since compiled: running the pure-Python code of every "
                           "hot module (rebuild with: python3 -m pip install -e .)",
                           ", ".join(changed))
            built = {}
        _built_hashes = built
    return _built_hashes


def _matches(package: Path, module_name: str, digest: str) -> bool:
    try:
        return source_hash(package, module_name) == digest
    except OSError:
        return False


def use_compiled(namespace: Dict[str, Any], twin_name: str) -> bool:
    """Give the module whose globals are ``namespace`` the names of its
    compiled twin ``twin_name``. Returns True when it did; False (the pure
    code stays) when there is no twin, it was built from other source, or
    GSOCKET_PURE_PYTHON is set. Runs at import; never blocks."""
    name = namespace["__name__"]
    if name == twin_name or PURE_PYTHON:   # the twin runs this same line: nothing to do
        return False
    if name not in _hashes():
        return False
    try:
        twin = importlib.import_module(twin_name)
    except ImportError as err:
        logger.warning("%s: compiled twin %s does not import (%s): running the pure-Python code",
                       name, twin_name, err)
        return False
    namespace.update({key: value for key, value in vars(twin).items() if key not in _OWN_NAMES})
    _in_use[name] = twin_name
    return True


def code_module(module: Any) -> Any:
    """The module whose globals ``module``'s code reads: its compiled twin
    when that runs, else ``module`` itself (so that a test patching a
    module constant patches the one in use). Never blocks."""
    twin_name = _in_use.get(module.__name__)
    return importlib.import_module(twin_name) if twin_name is not None else module


def compiled_modules() -> Dict[str, str]:
    """Module name -> compiled twin, for each hot module that runs compiled
    in this process (empty: all pure Python). Never blocks."""
    return dict(_in_use)
