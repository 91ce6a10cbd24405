"""Check the plain tree against the Structs' types, collecting every problem.

`msgspec.convert` stops at the first error and is stricter or looser than
yaml.v3 in places users depend on, so this walker, driven by
`msgspec.inspect.type_info`, first reproduces yaml.v3's decoding rules
(docs/compat.md, Config keys and decoding) and reports every mismatch with its key path:

- a scalar in a string field becomes its source text (`name: 42` -> "42");
- a float in an int field is truncated toward zero; strings and bools in int
  fields are errors;
- bool fields also take the YAML 1.1 words (`yes`, `off`, ...);
- null leaves a scalar or object field at its default, and makes a list or
  map empty and an optional field absent.

Unlike yaml.v3, a key that is no field of its Struct is an error naming the
nearest field (a misspelt `ttll` would otherwise be silently ignored).

The result converts with `msgspec.convert(..., strict=True)` without error.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Collection
from typing import Any

import msgspec
import msgspec.inspect as mi

from swapd.config.errors import Issue, Path
from swapd.config.macros import go_format

MISSING: Any = object()

_YAML11_BOOLS = {
    **dict.fromkeys("y Y yes Yes YES on On ON true True TRUE".split(), True),
    **dict.fromkeys("n N no No NO off Off OFF false False FALSE".split(), False),
}

# A hook may take over a path: return (handled, value).
Hook = Callable[[Path, Any], tuple[bool, Any]]


def describe(value: Any) -> str:
    """How a value appears in a message: `"soon"`, `true`, `1.5`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return go_format(value)
    return "a list" if isinstance(value, list) else "a mapping"


def unknown_key(key: str, known: Collection[str]) -> str:
    """The message for a key that is not in `known`, with the nearest known key if any."""
    folded = {k.lower(): k for k in known}
    nearest = folded.get(key.lower())
    if nearest is None:
        close = difflib.get_close_matches(key.lower(), list(folded), n=1, cutoff=0.6)
        nearest = folded[close[0]] if close else None
    hint = f'; did you mean "{nearest}"?' if nearest is not None else ""
    return f"unknown key {describe(key)}{hint}"


def _int_bounds(t: mi.IntType | mi.FloatType) -> str:
    parts = []
    if t.ge is not None:
        parts.append(f">= {t.ge}")
    if t.gt is not None:
        parts.append(f"> {t.gt}")
    if t.le is not None:
        parts.append(f"<= {t.le}")
    if t.lt is not None:
        parts.append(f"< {t.lt}")
    return (" " + " and ".join(parts)) if parts else ""


def _out_of_bounds(t: mi.IntType | mi.FloatType, value: float) -> bool:
    return (
        (t.ge is not None and value < t.ge)
        or (t.gt is not None and value <= t.gt)
        or (t.le is not None and value > t.le)
        or (t.lt is not None and value >= t.lt)
    )


class Coercer:
    def __init__(self, texts: dict[Path, str], hooks: dict[str, Hook] | None = None) -> None:
        self.texts = texts
        self.hooks = hooks or {}
        self.issues: list[Issue] = []

    def problem(self, path: Path, message: str) -> Any:
        self.issues.append(Issue(path, message))
        return MISSING

    def struct(self, cls: type[msgspec.Struct], value: Any, path: Path = ()) -> Any:
        return self.coerce(mi.type_info(cls), value, path)

    def coerce(self, t: mi.Type, value: Any, path: Path) -> Any:
        while isinstance(t, mi.Metadata):
            t = t.type
        if isinstance(t, mi.StructType):
            hook = self.hooks.get(t.cls.__name__)
            if hook is not None:
                handled, result = hook(path, value)
                if handled:
                    return result
            if value is None:
                return MISSING
            if not isinstance(value, dict):
                return self.problem(path, f"expected a mapping, got {describe(value)}")
            out: dict[str, Any] = {}
            for f in t.fields:
                if f.encode_name in value:
                    v = self.coerce(f.type, value[f.encode_name], (*path, f.encode_name))
                    if v is not MISSING:
                        out[f.encode_name] = v
            known = [f.encode_name for f in t.fields]
            for key in value:
                if key not in known:
                    self.problem((*path, key), unknown_key(key, known))
            return out
        if isinstance(t, mi.UnionType):
            return self.union(t, value, path)
        if value is None:
            if isinstance(t, mi.ListType):
                return []
            if isinstance(t, mi.DictType):
                return {}
            return None if isinstance(t, (mi.AnyType, mi.NoneType)) else MISSING
        if isinstance(t, mi.AnyType):
            return value
        if isinstance(t, mi.StrType):
            return self.string(value, path)
        if isinstance(t, mi.BoolType):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value in _YAML11_BOOLS:
                return _YAML11_BOOLS[value]
            return self.problem(path, f"expected bool, got {describe(value)}")
        if isinstance(t, mi.IntType):
            return self.integer(t, value, path)
        if isinstance(t, mi.FloatType):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if _out_of_bounds(t, value):
                    return self.problem(
                        path, f"expected number{_int_bounds(t)}, got {describe(value)}"
                    )
                return float(value)
            return self.problem(path, f"expected number, got {describe(value)}")
        if isinstance(t, mi.LiteralType):
            text = self.string(value, path)
            if text is MISSING:
                return MISSING
            allowed = [v for v in t.values if v != ""]
            if text not in t.values:
                return self.problem(
                    path, f"must be one of: {', '.join(map(str, allowed))}, got {describe(text)}"
                )
            return text
        if isinstance(t, mi.ListType):
            if not isinstance(value, list):
                return self.problem(path, f"expected a list, got {describe(value)}")
            items = []
            for i, item in enumerate(value):
                if item is None and isinstance(t.item_type, mi.StrType):
                    items.append("")
                    continue
                v = self.coerce(t.item_type, item, (*path, i))
                if v is not MISSING:
                    items.append(v)
            return items
        if isinstance(t, mi.DictType):
            if not isinstance(value, dict):
                return self.problem(path, f"expected a mapping, got {describe(value)}")
            out = {}
            for k, item in value.items():
                if item is None and isinstance(t.value_type, mi.StructType):
                    item = {}
                v = self.coerce(t.value_type, item, (*path, k))
                if v is not MISSING:
                    out[k] = v
            return out
        raise TypeError(f"unsupported schema type {t!r}")  # a bug in schema.py

    def string(self, value: Any, path: Path) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            return self.texts.get(path, go_format(value))
        return self.problem(path, f"expected a string, got {describe(value)}")

    def integer(self, t: mi.IntType, value: Any, path: Path) -> Any:
        want = f"expected int{_int_bounds(t)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.problem(path, f"{want}, got {describe(value)}")
        if isinstance(value, float):
            if not math.isfinite(value):
                return self.problem(path, f"{want}, got {describe(value)}")
            value = int(value)  # yaml.v3 truncates floats into int fields
        if _out_of_bounds(t, value):
            return self.problem(path, f"{want}, got {value}")
        return value

    def union(self, t: mi.UnionType, value: Any, path: Path) -> Any:
        types = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if value is None:
            return None if len(types) < len(t.types) else MISSING
        if len(types) == 1:
            return self.coerce(types[0], value, path)
        bases = [x.type if isinstance(x, mi.Metadata) else x for x in types]
        if isinstance(value, dict):  # a word or a mapping (budget costs)
            for x, base in zip(types, bases, strict=True):
                if isinstance(base, (mi.DictType, mi.StructType)):
                    return self.coerce(x, value, path)
        literals = [v for base in bases if isinstance(base, mi.LiteralType) for v in base.values]
        if literals:
            if isinstance(value, str) and value in literals:
                return value
            mapping = any(isinstance(b, (mi.DictType, mi.StructType)) for b in bases)
            words = ", ".join(str(v) for v in literals if v != "")
            return self.problem(
                path,
                f"must be one of: {words}" + (" or a mapping" if mapping else "")
                + f", got {describe(value)}",
            )  # fmt: skip
        for x in types:  # scalar unions (macro values): take the matching kind as is
            base = x.type if isinstance(x, mi.Metadata) else x
            if (
                (isinstance(base, mi.StrType) and isinstance(value, str))
                or (isinstance(base, mi.BoolType) and isinstance(value, bool))
                or (
                    isinstance(base, mi.IntType)
                    and isinstance(value, int)
                    and not isinstance(value, bool)
                )
                or (isinstance(base, mi.FloatType) and isinstance(value, float))
            ):
                return value
        return self.problem(path, f"expected a scalar, got {describe(value)}")
