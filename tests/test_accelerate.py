"""The compiled twins of the hot modules (gsocket/_accelerate.py): used
when built from this very source, never when GSOCKET_PURE_PYTHON is set,
and not at all (with a warning) once any hot source changed since the build.
Each case imports gsocket in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gsocket
from gsocket._accelerate import HASHES_FILE, PURE_PYTHON, compiled_modules

PACKAGE = Path(gsocket.__file__).resolve().parent
HOT = ["_netutil", "_arguments", "buffer", "_event_channel", "_slot", "_stream", "_listener",
       "_flow_ops", "server", "driver", "_socket_lookup", "_socket_pool", "socket"]

PROBE = ("import json, gsocket.socket, gsocket._stream as s, gsocket._accelerate as a; "
         "print(json.dumps([sorted(a.compiled_modules()), s.StreamSlot.__module__]))")


def probe(pythonpath: Path, pure: bool) -> tuple:
    environment = {key: value for key, value in os.environ.items()
                   if key != "GSOCKET_PURE_PYTHON"}
    environment["PYTHONPATH"] = str(pythonpath)
    if pure:
        environment["GSOCKET_PURE_PYTHON"] = "1"
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env=environment, timeout=60, cwd=pythonpath)
    assert result.returncode == 0, result.stderr
    modules, stream_module = json.loads(result.stdout)
    return modules, stream_module, result.stderr


def built() -> bool:
    return (PACKAGE / HASHES_FILE).exists()


def test_setup_builds_a_twin_for_every_hot_module_it_lists() -> None:
    setup_text = (PACKAGE.parent / "setup.py").read_text()
    for module in HOT:
        assert f'"{module}"' in setup_text
        source = (PACKAGE / f"{module}.py").read_text()
        assert f'use_compiled(globals(), "gsocket._c_{module.lstrip("_")}")' in source


def test_this_process_runs_the_twins_exactly_when_built_and_not_pure() -> None:
    expected = sorted(f"gsocket.{module}" for module in HOT) if built() and not PURE_PYTHON else []
    assert sorted(compiled_modules()) == expected


def test_pure_python_when_asked() -> None:
    modules, stream_module, _ = probe(PACKAGE.parent, pure=True)
    assert modules == []
    assert stream_module == "gsocket._stream"


def test_the_twins_run_when_built_from_this_source() -> None:
    modules, stream_module, _ = probe(PACKAGE.parent, pure=False)
    if built():
        assert modules == sorted(f"gsocket.{module}" for module in HOT)
        assert stream_module == "gsocket._c_stream"
    else:
        assert modules == [] and stream_module == "gsocket._stream"


def test_a_changed_source_turns_every_twin_off_with_a_warning(tmp_path: Path) -> None:
    copy = tmp_path / "gsocket"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if not built():   # no compiler here: record a build as setup.py would have
        from gsocket._accelerate import source_hash
        (copy / HASHES_FILE).write_text(json.dumps(
            {f"gsocket.{module}": source_hash(copy, f"gsocket.{module}") for module in HOT}))
    with open(copy / "_slot.py", "a") as source:
        source.write("\n# edited after the build\n")
    modules, stream_module, stderr = probe(tmp_path, pure=False)
    assert modules == []
    assert stream_module == "gsocket._stream"
    assert "gsocket._slot changed since compiled" in stderr
