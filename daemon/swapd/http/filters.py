"""Request-body filters: useModelName, stripParams, setParams, setParamsByID.

Applied to JSON bodies in llama-swap's order (docs/compat.md, Filters): useModelName sets
`model`; stripParams deletes keys (sanitised, de-duplicated, sorted);
setParams sets keys (sorted); setParamsByID[<requested name>] sets keys last,
so it overrides setParams. `model` is protected: filters never strip or set
it. Keys are paths: `a.b` is `b` inside `a`, `\\.` is a literal dot, and a
numeric segment indexes into an array.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from swapd.http.settings import Filters

PROTECTED = frozenset({"model"})


def parse_path(key: str) -> list[str]:
    """Split a key on unescaped dots; `\\.` stays a literal dot."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] == ".":
            current.append(".")
            i += 2
            continue
        if char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    segments.append("".join(current))
    return segments


def _index(container: list[Any], segment: str) -> int | None:
    if segment.isdigit():
        return int(segment)
    return None


def delete_path(obj: dict[str, Any], key: str) -> bool:
    """Delete the value at `key`; True when something was removed."""
    *parents, last = parse_path(key)
    node: Any = obj
    for segment in parents:
        if isinstance(node, dict):
            node = node.get(segment)
        elif isinstance(node, list) and (i := _index(node, segment)) is not None and i < len(node):
            node = node[i]
        else:
            return False
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and (i := _index(node, last)) is not None and i < len(node):
        del node[i]
        return True
    return False


def set_path(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` to a copy of `value`, creating intermediate objects as needed.

    A segment that meets a scalar replaces it with an object; a numeric
    segment on an array sets that element (appending when it is one past the end).
    """
    *parents, last = parse_path(key)
    node: Any = obj
    for segment in parents:
        if isinstance(node, list) and (i := _index(node, segment)) is not None and i < len(node):
            child = node[i]
            if not isinstance(child, dict | list):
                child = node[i] = {}
            node = child
            continue
        if not isinstance(node, dict):
            return
        child = node.get(segment)
        if not isinstance(child, dict | list):
            child = node[segment] = {}
        node = child
    value = copy.deepcopy(value)
    if isinstance(node, list) and (i := _index(node, last)) is not None:
        if i < len(node):
            node[i] = value
        elif i == len(node):
            node.append(value)
    elif isinstance(node, dict):
        node[last] = value


def strip_keys(strip_params: str) -> list[str]:
    """stripParams sanitised: trimmed, no empties, no protected names, unique, sorted."""
    keys = {k.strip() for k in strip_params.split(",")}
    return sorted(k for k in keys if k and k not in PROTECTED)


def set_items(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """setParams sanitised: protected names dropped, keys sorted."""
    return [(k, params[k]) for k in sorted(params) if k not in PROTECTED]


def applies(use_model_name: str, filters: Filters, requested: str) -> bool:
    """Whether `apply` could change a body; lets the relay forward the original bytes."""
    if not (use_model_name or filters.strip_params or filters.set_params_by_id):
        return bool(filters.set_params)  # the usual case: no key list to parse
    return bool(
        use_model_name
        or strip_keys(filters.strip_params)
        or filters.set_params
        or requested in filters.set_params_by_id
    )


def apply(
    body: dict[str, Any], *, use_model_name: str, filters: Filters, requested: str
) -> dict[str, Any]:
    """Apply the filters to `body` in place, in llama-swap's order, and return it."""
    if use_model_name:
        body["model"] = use_model_name
    for key in strip_keys(filters.strip_params):
        delete_path(body, key)
    for key, value in set_items(filters.set_params):
        set_path(body, key, value)
    for key, value in set_items(filters.set_params_by_id.get(requested, {})):
        set_path(body, key, value)
    return body
