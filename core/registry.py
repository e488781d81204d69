"""Name -> lazily imported class, as in lm-evaluation-harness: one registration per name.

An unknown name raises `UnknownName` whose message lists the valid names and the closest match, so the CLI
can print it as a one-line error. A name of the form "package.module:Class" is imported directly, so users
(and tests) can plug in their own class without registering it.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any


class UnknownName(ValueError):
    """A user-supplied name that is not registered; the message is ready for a one-line error."""


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]):
        """entries: name -> "module.path:Attribute"; nothing is imported until `load`."""
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: str) -> str:
        if name in self._entries or ":" in name:
            return name
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownName(f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}")

    def load(self, name: str) -> Any:
        module, _, attr = self._entries.get(self.check(name), name).partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            if name in self._entries:
                raise  # a registered entry that fails to import is a bug, not a user error
            raise UnknownName(f"cannot import {self.kind} {name!r}: {err}") from None
