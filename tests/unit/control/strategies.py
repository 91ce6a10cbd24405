"""Hypothesis strategies for protocol messages, derived from the Structs' own types.

Built from `msgspec.inspect`, so a field added to the protocol is generated
(and round-tripped) without touching the tests.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

_text = st.text(max_size=12)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_int = st.integers(min_value=-(2**53), max_value=2**53)


def for_type(t: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """A strategy producing valid values of one msgspec type."""
    mi = msgspec.inspect
    if isinstance(t, mi.StructType):
        return for_struct(t.cls)
    if isinstance(t, mi.UnionType):
        return st.one_of([for_type(member) for member in t.types])
    if isinstance(t, mi.ListType):
        return st.lists(for_type(t.item_type), max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(for_type(t.key_type), for_type(t.value_type), max_size=3)
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(list(t.values))
    if isinstance(t, mi.StrType):
        return _text
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        return _int
    if isinstance(t, mi.FloatType):
        return _finite
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BytesType):
        return st.binary(max_size=16)
    if isinstance(t, mi.AnyType):
        return st.recursive(
            st.none() | st.booleans() | _int | _text,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
            max_leaves=6,
        )
    raise TypeError(f"no strategy for {t!r}")


def for_struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Instances of a Struct, every field (required or not) generated."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: for_type(f.type) for f in info.fields}
    return st.builds(cls, **fields)


def for_union(union: Any) -> st.SearchStrategy[Any]:
    return st.one_of([for_struct(cls) for cls in union.__args__])
