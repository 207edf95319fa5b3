"""Sphinx configuration for gsocket's documentation.

Build it with ``python3 -m sphinx -W -b html docs docs/_build/html`` from the
repository root (``pip install -e '.[docs]'`` first). ``-W`` turns every
warning (a broken reference, a malformed docstring) into an error.
"""

from __future__ import annotations

import os
import sys

# The package is imported from this checkout, whatever else is installed.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import gsocket  # noqa: E402

project = "gsocket"
author = "the gsocket authors"
copyright = "the gsocket authors, MIT licence"
release = gsocket.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "tutorial/*.py", "porting/*.py"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Every cross-reference must resolve (with -W, a broken one fails the build),
# except those to libraries without docs here and to private modules.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(h11|wsproto|gevent|greenlet|pytest|_pytest)\..*"),
    (r"py:.*", r"'?RawGreenlet'?"),
    (r"py:.*", r"(gsocket\.)?_[a-z_]+(\..*)?"),     # private modules: gsocket._slot, _driver.Driver
]
nitpick_ignore = [
    ("py:class", "'Channel'"),              # a forward reference in a signature
    ("py:class", "BackupEntry"),            # a type alias of gsocket.channel
    ("py:data", "LEAK_GRACE"),              # re-exported by the pytest plugin
    ("py:data", "PEER_TIMEOUT"),
    ("py:attr", "grace"),
]

html_theme = "alabaster"
# Wide enough for the tables of the porting guide and 100-column code.
html_theme_options = {"page_width": "1180px", "sidebar_width": "240px"}
html_title = f"gsocket {release}"
html_static_path: list = []


def _headings_to_rubrics(app, what, name, obj, options, lines):  # noqa: ANN001
    """Turn reST section headings in docstrings into rubrics.

    Module docstrings use headings ("Theory of operation" and the like);
    several modules share a heading's text, and headings inside an
    autodoc block would also break the page's own section structure.
    """
    underline = set("-=~^\"'`#*+")
    out: list = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        stripped = nxt.strip()
        if (line.strip() and stripped and len(set(stripped)) == 1 and stripped[0] in underline
                and len(stripped) >= len(line.strip()) and not line.startswith(" ")):
            out.append(f".. rubric:: {line.strip()}")
            out.append("")
            i += 2
            continue
        out.append(line)
        i += 1
    lines[:] = out


def _resolve_reexports(app, env, node, contnode):  # noqa: ANN001, ANN202
    """``gsocket.Connection`` and the other names the package re-exports
    resolve to where they are documented (``gsocket.connection.Connection``)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("gsocket.") or target.count(".") != 1:
        return None
    obj = getattr(gsocket, target.split(".", 1)[1], None)
    module = getattr(obj, "__module__", None)
    if obj is None or module is None or module == "gsocket":
        return None
    real = f"{module}.{getattr(obj, '__qualname__', target.split('.', 1)[1])}"
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                             real, node, contnode)


def setup(app):  # noqa: ANN001, ANN201
    """Sphinx hook: register the docstring filter and the re-export resolver."""
    app.connect("autodoc-process-docstring", _headings_to_rubrics)
    app.connect("missing-reference", _resolve_reexports)
    return {"parallel_read_safe": True}
