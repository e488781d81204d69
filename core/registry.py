"""Name -> lazily imported object, as in lm-evaluation-harness: one registration per name.

An entry is `"package.module:Attr"` (imported on first `load`) or an `Alias` of another entry that binds
parameters (`"pruned-first-6": Alias("pruned", method="first", keep=6)`). An unknown name raises `UnknownName`
whose message lists the valid names and the closest match, so the CLI can print it as a one-line error. A name
of the form "package.module:Attr" is imported directly, so users (and tests) can plug in their own class
without registering it. `base`, when given, is a class every loaded class must subclass or, for a Protocol,
satisfy structurally (its attributes present).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any


class UnknownName(ValueError):
    """A user-supplied name that is not registered; the message is ready for a one-line error."""


@dataclass(frozen=True)
class Alias:
    """A registry name that stands for `target` with some parameters bound."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, target: str, **params):
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "params", params)


class Registry:
    def __init__(self, kind: str, entries: dict[str, str | Alias], required: tuple[str, ...] = ()):
        """entries: name -> "module.path:Attribute" or Alias; nothing is imported until `load`. `required`: attributes
        a loaded object must have (checked on load, so a user's class missing one fails with a one-line error)."""
        self.kind = kind
        self._entries = dict(entries)
        self.required = required
        for name, entry in self._entries.items():
            if isinstance(entry, Alias) and entry.target not in self._entries:
                raise ValueError(f"{kind} alias {name!r} points to unregistered {entry.target!r}")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: str) -> str:
        if name in self._entries or ":" in name:
            return name
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownName(f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}")

    def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
        """-> (the registered or import-path name that holds the object, params bound by aliases on the way)."""
        self.check(name)
        params: dict[str, Any] = {}
        while isinstance(self._entries.get(name), Alias):
            alias = self._entries[name]
            params = {**alias.params, **params}
            name = alias.target
        return name, params

    def load(self, name: str) -> Any:
        target, _ = self.resolve(name)
        module, _, attr = self._entries.get(target, target).partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            if target in self._entries:
                raise  # a registered entry that fails to import is a bug, not a user error
            raise UnknownName(f"cannot import {self.kind} {name!r}: {err}") from None
        missing = [a for a in self.required if not hasattr(obj, a)]
        if missing:
            raise UnknownName(f"{self.kind} {name!r} ({obj!r}) lacks {', '.join(missing)}: not a {self.kind}")
        return obj
