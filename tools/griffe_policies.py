"""A griffe extension for the API docs: a policy's signature and ``Args:`` text are derived at import time
(`banditlib.policies._params`), which griffe's static analysis of the source cannot see. For every class whose
runtime object carries a derived ``__init__``, this reads the docstring and the signature from the live class,
as griffe's own "inspecting specific objects" recipe does; the rest of the package stays statically analysed
(forcing inspection of the whole package renders other objects worse).

Used from mkdocs.yml: ``extensions: [tools/griffe_policies.py:DerivedPolicyDocs]``.
"""

from __future__ import annotations

import inspect
from typing import Any

import griffe

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _default(value: Any) -> str | None:
    """The default as source text (``torch.float32`` rather than its repr's ``torch.float32``, which agree)."""
    return None if value is inspect.Parameter.empty else repr(value)


class DerivedPolicyDocs(griffe.Extension):
    """Replace the docstring and ``__init__`` parameters of derived-signature classes by the runtime ones."""

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if not cls.path.startswith("banditlib."):
            return
        try:
            runtime = griffe.dynamic_import(cls.path)
        except ImportError:
            return
        init = getattr(runtime, "__dict__", {}).get("__init__")
        if init is None or not hasattr(init, "__signature__"):
            return
        doc = inspect.getdoc(runtime)
        if doc:
            cls.docstring = griffe.Docstring(doc, parent=cls)
        params = [
            griffe.Parameter(
                p.name,
                kind=_KINDS[p.kind],
                annotation=None if p.annotation is inspect.Parameter.empty else str(p.annotation),
                default=_default(p.default),
            )
            for p in inspect.signature(init).parameters.values()
        ]
        func = griffe.Function("__init__", parameters=griffe.Parameters(*params), returns="None")
        cls.set_member("__init__", func)
