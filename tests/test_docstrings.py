"""Every public function, class and method of gsocket's public modules has a
docstring that says something (issue 8, "The house"); in the socket layers
(server, driver, socket, skynet, connection) it also says when the call
blocks and, for a call that returns a value, what it returns.

Public: a module none of whose dotted parts starts with ``_``, and a name
there without a leading ``_`` defined in that module (re-exports are
checked where they are defined).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Any, Iterator, List, Tuple

import pytest

from helpers import defined_in, is_function

import gsocket

#: Where the brief asks for "what it returns and when it blocks" in words.
LAYER_MODULES = ("gsocket.server", "gsocket.driver", "gsocket.socket", "gsocket.skynet",
                 "gsocket.connection")

#: Fewer words than this is no documentation ("SocketServer.start.").
MIN_WORDS = 5

#: A docstring that says what comes back: the word, or a noun phrase that
#: names the value ("The id of ...", "True when ...", "(host, port) of ...").
RETURN_WORDS = re.compile(r"\breturn|\btrue\b|\bfalse\b|\bnone\b|\byield", re.IGNORECASE)
NOUN_PHRASE = re.compile(r"^(the|a|an|one|every|each|\(|``)", re.IGNORECASE)
BLOCK_WORDS = re.compile(r"\bblock", re.IGNORECASE)


def public_modules() -> List[str]:
    names = ["gsocket"]
    for info in pkgutil.walk_packages(gsocket.__path__, "gsocket."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def public_names(module: Any) -> List[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return [name for name in names if not name.startswith("_")]


def documented_items(module_name: str) -> Iterator[Tuple[str, Any, bool]]:
    """(qualified name, object, is a callable whose returns matter) for
    every public function, class, method and property of the module."""
    module = importlib.import_module(module_name)
    for name in public_names(module):
        obj = getattr(module, name, None)
        if not defined_in(obj, module_name):
            continue
        if is_function(obj):
            yield f"{module_name}.{name}", obj, True
        elif inspect.isclass(obj):
            yield f"{module_name}.{name}", obj, False
            for member_name, member in class_members(obj):
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    yield f"{module_name}.{name}.{member_name}", member.fget, False
                elif is_function(member):
                    yield f"{module_name}.{name}.{member_name}", member, True


def class_members(cls: type) -> Iterator[Tuple[str, Any]]:
    """The public members of ``cls``, also those it inherits from gsocket's
    own (often private) bases, such as a mixin of operations."""
    seen = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("gsocket"):
            continue
        for member_name, member in vars(klass).items():
            if not member_name.startswith("_") and member_name not in seen:
                seen.add(member_name)
                yield member_name, member


def own_docstring(obj: Any) -> str:
    """The object's own docstring ('' when it has none, or only the one a
    dataclass or NamedTuple writes from the signature)."""
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    doc = inspect.cleandoc(doc) if doc else ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc


def returns_a_value(function: Any) -> bool:
    annotation = inspect.signature(function).return_annotation
    return annotation not in (None, "None", inspect.Signature.empty, "NoReturn")


ALL_ITEMS = [item for module in public_modules() for item in documented_items(module)]


def test_the_scan_finds_the_public_api() -> None:
    names = {name for name, _, _ in ALL_ITEMS}
    # A scan that found nothing would pass everything below.
    assert {"gsocket.socket.read", "gsocket.server.SocketServer.send", "gsocket.driver.Driver.poll",
            "gsocket.skynet.sleep", "gsocket.connection.Connection.readline"} <= names
    assert len(names) > 300


def test_every_public_name_has_a_docstring_that_says_something() -> None:
    missing = [f"{name}: {own_docstring(obj)!r}" for name, obj, _ in ALL_ITEMS
               if len(own_docstring(obj).split()) < MIN_WORDS]
    assert missing == [], "docstring missing or under %d words:\n  %s" % (
        MIN_WORDS, "\n  ".join(missing))


@pytest.mark.parametrize("module_name", LAYER_MODULES)
def test_socket_layers_say_when_they_block(module_name: str) -> None:
    silent = [name for name, obj, callable_ in documented_items(module_name)
              if callable_ and not BLOCK_WORDS.search(own_docstring(obj))]
    assert silent == [], "docstring does not say when it blocks:\n  " + "\n  ".join(silent)


@pytest.mark.parametrize("module_name", LAYER_MODULES)
def test_socket_layers_say_what_they_return(module_name: str) -> None:
    silent = []
    for name, obj, callable_ in documented_items(module_name):
        if not callable_ or not returns_a_value(obj):
            continue
        doc = own_docstring(obj)
        if not (RETURN_WORDS.search(doc) or NOUN_PHRASE.match(doc)):
            silent.append(f"{name}: {doc[:60]!r}")
    assert silent == [], "docstring does not say what it returns:\n  " + "\n  ".join(silent)
