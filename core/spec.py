"""A policy's identity: family, checkpoint and typed parameters, with a stable hash.

A `PolicySpec` is what a user names (`POLICY=pruned PARAMS="method=first,keep=6"`, a registry alias that binds
params such as `pruned-first-6`, an import path `my_module:MyPolicy`, or a JSON spec file). Once the checkpoint
is resolved for a suite, `identity` (family, checkpoint sha256, every param with defaults filled in) is hashed:
results are keyed by `run_tag` = readable name + that hash, so two settings of one family never share a run.

Params of a family are a frozen dataclass (`Params` attribute of the policy class); `parse_params` builds it from
user text or JSON values and raises `ParamError` (one line, listing the valid keys) on anything else.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ParamError(ValueError):
    """A parameter the family does not take, or a value it rejects; the message is one line for the user."""


@dataclass(frozen=True)
class NoParams:
    """Params of a family that takes none."""


@dataclass(frozen=True)
class PolicySpec:
    """What to run: `family` (a registry name or `module:Class`), `params` as given (validated when the policy is
    built), `checkpoint` folder (None: the family's shipped one for the suite). `name` is the name the user typed
    (an alias keeps its own name in run folders)."""

    family: str
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "params", dict(self.params))
        if not self.name:
            object.__setattr__(self, "name", self.family)

    def __hash__(self):
        return hash((self.family, json.dumps(self.params, sort_keys=True, default=str), self.checkpoint, self.name))

    def with_checkpoint(self, checkpoint) -> "PolicySpec":
        """The same spec loading `checkpoint` (a folder, or None for the family's shipped one)."""
        return dataclasses.replace(self, checkpoint=str(checkpoint) if checkpoint else None)

    def to_dict(self) -> dict:
        return {"family": self.family, "params": self.params, "checkpoint": self.checkpoint, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict) -> "PolicySpec":
        unknown = set(data) - {"family", "params", "checkpoint", "name"}
        if unknown or "family" not in data:
            raise ParamError(f"a policy spec needs 'family' and may have 'params', 'checkpoint', 'name'; got {sorted(data)}")
        return cls(data["family"], dict(data.get("params") or {}), data.get("checkpoint"), data.get("name") or "")


_PAIR = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)")


def parse_param_text(text: str) -> dict[str, str]:
    """`"method=first,keep=6"` -> {"method": "first", "keep": "6"} (lm-eval `model_args` style). A value may hold
    commas (`blocks=0,1,2,threshold=0.1`): a pair starts only where `name=` follows a comma."""
    text = text.strip()
    if not text:
        return {}
    out = {}
    for pair in _PAIR.split(text):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ParamError(f"PARAMS must be comma-separated key=value pairs like keep=6,method=first, got {text!r}")
        out[key.strip()] = value.strip()
    return out


def _coerce(name: str, kind, value):
    """`value` (user text or a JSON value) as the dataclass field type `kind`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, inner[0], value)
    if origin is tuple:
        items = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(name, args[0], v) for v in items if v != "")
    if origin is typing.Literal:
        if value not in args:
            raise ParamError(f"param {name!r} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ParamError(f"param {name!r} must be true or false, got {value!r}")
            return value.lower() in ("true", "1")
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ParamError(f"param {name!r} must be {kind.__name__}, got {value!r}") from None


def parse_params(params_cls, given: dict[str, Any], family: str):
    """Build the family's params dataclass from `given` (text or JSON values); ParamError names the bad key or value
    and lists the valid keys with their defaults."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    valid = ", ".join(f"{n}={f.default!r}" if f.default is not dataclasses.MISSING else n for n, f in fields.items())
    for key in given:
        if key not in fields:
            raise ParamError(f"policy {family!r} takes no param {key!r}; valid: {valid or 'none'}")
    values = {k: _coerce(k, hints[k], v) for k, v in given.items()}
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as err:
        raise ParamError(f"policy {family!r}: {err} (params: {valid})") from None


def identity(family: str, checkpoint_sha256: str, params) -> dict:
    """What determines a policy's behaviour: hashed into the run key and stored in every manifest. A param declared
    with `field(metadata={"omit_at_default": True})` (one added after runs were recorded) is left out while it has
    its default, so those runs keep the identity they were recorded with."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
              if not (f.metadata.get("omit_at_default") and getattr(params, f.name) == f.default)}
    return {"family": family, "checkpoint_sha256": checkpoint_sha256,
            "params": json.loads(json.dumps(values, default=list))}


def spec_hash(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def run_tag(spec: PolicySpec, ident: dict) -> str:
    """Folder name of a run: the name the user typed (':' and other path-hostile characters replaced), the params
    the user gave, and the identity hash; e.g. `pruned_keep-6_method-first-3f2a9c0d1e4b`, `my_module.MyPolicy-…`."""
    parts = [spec.name.replace(":", ".")] + [f"{k}-{v}" for k, v in sorted(spec.params.items())]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(p) for p in parts)).strip("-")[:80]
    return f"{readable}-{spec_hash(ident)}"


def load_spec_file(path: Path) -> PolicySpec:
    """A JSON file {"family": ..., "params": {...}, "checkpoint": ...} as a spec."""
    try:
        return PolicySpec.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ParamError(f"cannot read policy spec file {path}: {err}") from None
