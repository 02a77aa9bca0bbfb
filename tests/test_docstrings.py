"""Every public name of ``banditlib`` and ``banditlib.adapters.*`` is documented: a docstring of its own, every
parameter as an ``Args:`` or ``Attributes:`` entry, and an ``Examples:`` section with a doctest.

Public names are the classes and functions in the ``__all__`` of ``banditlib`` and of every module of
``banditlib.adapters`` whose dotted name has no part starting with ``_`` (an object re-exported by several
modules is checked once, under the first of them). The examples themselves run under
``pytest --doctest-modules``; this file only checks that they are there.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from typing import Any

import pytest

import banditlib
import banditlib.adapters
from banditlib.policies.base import registered_policies

# Modules that need an optional framework: checked only where it imports.
OPTIONAL = {"banditlib.adapters.trl": "trl"}

# Names that need no example, each with the reason. Keep it short: an example is the quickest way to see how a
# name is called, and it runs as a test. Format: "module.Name": "why an example adds nothing".
EXAMPLE_EXEMPT: dict[str, str] = {}

ARG_SECTIONS = ("Args", "Arguments", "Parameters", "Attributes", "Keyword Args", "Keyword Arguments")
EXAMPLE_SECTIONS = ("Examples", "Example")
ENTRY = re.compile(r"\*{0,2}(\w+)(?: \([^)]*\))?:(?:\s|$)")


def _modules() -> list[str]:
    names = ["banditlib", "banditlib.offline", "banditlib.distributed", "banditlib.extend"]
    for info in pkgutil.walk_packages(banditlib.adapters.__path__, "banditlib.adapters."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _importable(dependency: str) -> bool:
    try:
        importlib.import_module(dependency)
    except ImportError:
        return False
    return True


def _collect() -> tuple[dict[str, Any], list[Any]]:
    objects: dict[str, Any] = {}
    params: list[Any] = []
    seen: set[int] = set()
    for module_name in _modules():
        dependency = OPTIONAL.get(module_name)
        if dependency is not None and not _importable(dependency):
            params.append(pytest.param(module_name, marks=pytest.mark.skip(reason=f"needs {dependency}")))
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if id(obj) in seen or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            qualname = f"{module_name}.{name}"
            objects[qualname] = obj
            params.append(qualname)
    return objects, params


OBJECTS, NAMES = _collect()


def _own_doc(obj: Any) -> str:
    """The object's own docstring ('' when it has none, inherits one or has the one dataclasses generate)."""
    if not inspect.isclass(obj):
        return obj.__doc__ or ""
    doc = obj.__dict__.get("__doc__") or ""
    if dataclasses.is_dataclass(obj):
        try:
            generated = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
        except (TypeError, ValueError):
            generated = None
        if doc == generated:
            return ""
    return doc


def _init_doc(obj: Any) -> str:
    """For a class, the docstring of an ``__init__`` it defines itself (rendered merged into the class's)."""
    init = obj.__dict__.get("__init__") if inspect.isclass(obj) else None
    return (init.__doc__ or "") if inspect.isfunction(init) else ""


def _sections(doc: str, titles: tuple[str, ...]) -> list[list[str]]:
    """The body lines of every Google-style section of ``doc`` titled one of ``titles``."""
    lines = inspect.cleandoc(doc).splitlines()
    header = re.compile(r"^(\s*)(?:" + "|".join(map(re.escape, titles)) + r"):\s*$")
    out = []
    i = 0
    while i < len(lines):
        m = header.match(lines[i])
        i += 1
        if not m:
            continue
        indent, body = len(m.group(1)), []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        out.append(body)
    return out


def _entries(doc: str) -> set[str]:
    """Names documented as entries of the Args / Attributes sections of ``doc`` (one name per entry)."""
    names = set()
    for body in _sections(doc, ARG_SECTIONS):
        real = [line for line in body if line.strip()]
        if not real:
            continue
        indent = min(len(line) - len(line.lstrip()) for line in real)
        for line in real:
            if len(line) - len(line.lstrip()) == indent and (m := ENTRY.match(line.strip())):
                names.add(m.group(1))
    return names


def _parameters(obj: Any) -> list[str]:
    """The signature's parameters, without ``self``, ``cls``, ``*args`` and ``**kwargs``."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtin-derived classes (exceptions) have no signature
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in sig.parameters.values() if p.kind not in skip and p.name not in ("self", "cls")]


@pytest.mark.parametrize("qualname", NAMES)
def test_has_its_own_docstring(qualname: str) -> None:
    obj = OBJECTS[qualname]
    assert _own_doc(obj).strip(), f"{qualname} has no docstring of its own"


@pytest.mark.parametrize("qualname", NAMES)
def test_documents_every_parameter(qualname: str) -> None:
    obj = OBJECTS[qualname]
    documented = _entries(_own_doc(obj)) | _entries(_init_doc(obj))
    missing = [p for p in _parameters(obj) if p not in documented]
    assert not missing, (
        f"{qualname}: parameters {missing} have no `name: description` entry under Args: (Attributes: for a "
        f"dataclass's fields)"
    )


@pytest.mark.parametrize("qualname", NAMES)
def test_has_an_example(qualname: str) -> None:
    if qualname in EXAMPLE_EXEMPT:
        pytest.skip(EXAMPLE_EXEMPT[qualname])
    doc = _own_doc(OBJECTS[qualname])
    assert any(">>>" in "\n".join(body) for body in _sections(doc, EXAMPLE_SECTIONS)), (
        f"{qualname} has no Examples: section with a `>>>` example"
    )


def test_the_collection_finds_the_public_names() -> None:
    some = ["banditlib.LinUCB", "banditlib.load", "banditlib.adapters.rlvr.RolloutScheduler",
            "banditlib.adapters.rlvr.sim.run", "banditlib.adapters.verl.rollout_batch_from_dataproto"]  # fmt: skip
    assert not [q for q in some if q not in OBJECTS]
    assert not set(EXAMPLE_EXEMPT) - set(OBJECTS), "EXAMPLE_EXEMPT names objects that are not public"


def test_the_section_parser() -> None:
    doc = """Summary.

    Args:
        a: one.
        b (int): two,
            continued: not an entry.
        c, d: a pair is not an entry for either.

    Examples:
        >>> 1 + 1
        2
    """
    assert _entries(doc) == {"a", "b"}
    assert any(">>>" in "\n".join(body) for body in _sections(doc, EXAMPLE_SECTIONS))
    assert not _sections("Summary.\n\n    >>> 1\n    1\n", EXAMPLE_SECTIONS)


def _args_entries(doc: str) -> dict[str, str]:
    """``name -> text`` of each entry of a Google-style ``Args:`` section (continuation lines joined)."""
    doc = inspect.cleandoc(doc)
    block = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("    ") and not line.startswith("     "):
            name, _, text = line.strip().partition(":")
            entries[name] = text.strip()
        else:
            entries[name] += " " + line.strip()
    return entries


@pytest.mark.parametrize("name,cls", sorted(registered_policies().items()), ids=sorted(registered_policies()))
def test_policy_docs_list_exactly_the_constructor_arguments(name: str, cls: type) -> None:
    """The ``Args:`` section and the signature are derived from the same declarations
    (`banditlib.policies._params`): every argument is documented, once, in signature order."""
    entries = _args_entries(cls.__doc__ or "")
    assert list(entries) == list(inspect.signature(cls).parameters)
    assert all(text for text in entries.values()), entries


def test_policies_sharing_an_estimator_document_its_arguments_alike() -> None:
    """Written once per component: the twins over one estimator say the same of the arguments they share."""
    for first, second in [(banditlib.NeuralUCB, banditlib.NeuralTS), (banditlib.LinUCB, banditlib.EpsilonGreedy)]:
        a, b = _args_entries(first.__doc__ or ""), _args_entries(second.__doc__ or "")
        shared = set(a) & set(b)
        assert len(shared) >= 9
        assert {k: a[k] for k in shared} == {k: b[k] for k in shared}
