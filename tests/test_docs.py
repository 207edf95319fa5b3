"""The documentation builds with Sphinx, warnings as errors, and says what
the code does: every public module has an API page, the event table carries
the numbers of ``gsocket.events``, and nothing points outside the repository.

The tutorial's programs are run by ``tests/test_tutorial.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gsocket

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "gsocket"

#: Pages a reader must find in the built site.
KEY_PAGES = [
    "index.html",
    "api/index.html",
    "api/socket.html",
    "api/server.html",
    "api/pytest_plugin.html",
]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML site once for this module; return its folder."""
    out = tmp_path_factory.mktemp("docs-html")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_docs_build_without_warnings(built_site: Path) -> None:
    for page in KEY_PAGES:
        assert (built_site / page).is_file(), f"{page} missing from the built docs"


def test_api_pages_come_from_the_docstrings(built_site: Path) -> None:
    socket_page = (built_site / "api" / "socket.html").read_text()
    # autodoc documented the functions, with their docstrings
    for name in ("gsocket.socket.readline", "gsocket.socket.write", "gsocket.socket.abandon"):
        assert f'id="{name}"' in socket_page, f"{name} is not documented"
    assert gsocket.socket.readline.__doc__.split()[0] in socket_page


def public_modules() -> list:
    """Dotted names of gsocket's public modules (no leading underscore)."""
    names = []
    for path in sorted(PACKAGE.glob("*.py")):
        if not path.stem.startswith("_"):
            names.append(path.stem)
    return names


def test_every_public_module_has_an_api_page() -> None:
    pages = {p.stem for p in (DOCS / "api").glob("*.md")}
    missing = [name for name in public_modules() if name not in pages]
    assert not missing, f"no docs/api page for: {missing}"
    index = (DOCS / "api" / "index.md").read_text()
    for name in public_modules():
        page = (DOCS / "api" / f"{name}.md").read_text()
        assert f"automodule:: gsocket.{name}" in page
        assert re.search(rf"^{re.escape(name)}$", index, re.M), f"api/{name} not in the toctree"


def test_nothing_in_the_docs_points_outside_the_repository() -> None:
    offenders = []
    for path in DOCS.rglob("*"):
        if path.suffix not in (".md", ".py", ".rst") or "_build" in path.parts:
            continue
        text = path.read_text()
        for needle in ("../shared", "/work/", "API.md", "semantics.md"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


def test_nothing_in_the_project_points_outside_the_repository() -> None:
    # The package, its examples, benchmarks and tests must work from a clone alone.
    offenders = []
    for folder in ("gsocket", "benchmarks", "examples", "tests", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if (not path.is_file() or path.suffix in (".png", ".pyc", ".so") or path.name == "test_docs.py"
                    or path.name == "_compiled.json"):   # build outputs, not in git
                continue
            text = path.read_text(errors="replace")
            for needle in ("../shared", "/work/"):
                if needle in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


def test_the_built_pages_name_no_outside_documents(built_site: Path) -> None:
    # Docstrings end up in the site too: they must not send readers elsewhere.
    offenders = []
    for page in built_site.rglob("*.html"):
        if "_modules" in page.parts:        # highlighted source, comments and all
            continue
        text = page.read_text()
        for needle in ("../shared", "/work/", "API.md", "semantics.md"):
            if needle in text:
                offenders.append(f"{page.relative_to(built_site)}: {needle}")
    assert not offenders, offenders


def test_the_doc_build_command_is_the_documented_one() -> None:
    conf = (DOCS / "conf.py").read_text()
    assert "python3 -m sphinx -W -b html docs docs/_build/html" in conf



def test_the_event_table_carries_the_numbers_of_the_code() -> None:
    from gsocket import events
    from gsocket.driver import SKYNET_TYPE

    text = (DOCS / "conventions.md").read_text()
    rows = re.findall(r"^\| `(SOCKET_[A-Z]+)` \| (\d+) \| (\d+ `[A-Z]+`|\(none\)) \|", text, re.M)
    assert [name for name, _, _ in rows] == [
        "SOCKET_DATA", "SOCKET_CLOSE", "SOCKET_OPEN", "SOCKET_ACCEPT", "SOCKET_ERROR",
        "SOCKET_EXIT", "SOCKET_UDP", "SOCKET_WARNING"]
    for name, number, skynet in rows:
        value = getattr(events, name)
        assert int(number) == value, name
        if skynet == "(none)":
            assert value not in SKYNET_TYPE, name
        else:
            skynet_number, skynet_name = skynet.split()
            assert SKYNET_TYPE[value] == int(skynet_number), name
            assert getattr(events, "SKYNET_SOCKET_TYPE_" + skynet_name.strip("`")) == int(skynet_number)


def test_the_tutorial_page_includes_files_that_exist() -> None:
    text = (DOCS / "tutorial.md").read_text()
    included = re.findall(r"```\{literalinclude\} (\S+)", text)
    assert len(included) >= 10
    for path in included:
        assert (DOCS / path).is_file(), path


def test_every_python_snippet_in_the_pages_compiles() -> None:
    # (The tutorial's and porting guide's programs are files that tests run;
    # the short snippets in the pages are at least valid Python.)
    import ast

    signature = re.compile(r"^[\w.]+\(.*\)( -> .+)?\s*(#.*)?$")
    count = 0
    for page in sorted(DOCS.rglob("*.md")):
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            lines = [line for line in block.splitlines() if line.strip()]
            if all(signature.match(line) for line in lines):
                continue        # a listing of signatures ("accept(id, *, path=None) -> bool")
            compile(block, f"{page.name} python block {number + 1}", "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            count += 1
    assert count >= 15
