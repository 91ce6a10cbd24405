import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swapd.http.filters import applies, apply, delete_path, parse_path, set_path, strip_keys
from swapd.http.settings import Filters


def test_parse_path() -> None:
    assert parse_path("a") == ["a"]
    assert parse_path("a.b.c") == ["a", "b", "c"]
    assert parse_path(r"a\.b.c") == ["a.b", "c"]
    assert parse_path("x.0") == ["x", "0"]


def test_strip_keys_sanitised_sorted() -> None:
    assert strip_keys(" top_k, model ,temperature,,top_k ") == ["temperature", "top_k"]
    assert strip_keys("") == []


def test_set_and_delete_nested() -> None:
    body: dict[str, Any] = {"a": {"b": 1}, "arr": [{"x": 1}, {"x": 2}], "s": 3}
    set_path(body, "a.c", [1])
    set_path(body, "new.deep", True)
    set_path(body, "arr.1.x", 9)
    set_path(body, "s.t", 1)
    set_path(body, r"dot\.key", "v")
    assert body == {
        "a": {"b": 1, "c": [1]},
        "arr": [{"x": 1}, {"x": 9}],
        "s": {"t": 1},
        "new": {"deep": True},
        "dot.key": "v",
    }
    assert delete_path(body, "a.b") is True
    assert delete_path(body, "arr.0") is True
    assert delete_path(body, "missing.x") is False
    assert body["a"] == {"c": [1]} and body["arr"] == [{"x": 9}]


def test_spec_order_and_protected_model() -> None:
    filters = Filters(
        strip_params="temperature, model",
        set_params={"top_k": 10, "model": "evil", "chat_template_kwargs.enable_thinking": False},
        set_params_by_id={"m:high": {"top_k": 99, "reasoning": "high"}},
    )
    body = {"model": "m:high", "temperature": 0.7, "top_k": 1}
    out = apply(body, use_model_name="real-name", filters=filters, requested="m:high")
    assert out == {
        "model": "real-name",
        "top_k": 99,
        "chat_template_kwargs": {"enable_thinking": False},
        "reasoning": "high",
    }
    other = apply({"model": "m"}, use_model_name="", filters=filters, requested="m")
    assert other["model"] == "m" and other["top_k"] == 10 and "reasoning" not in other


def test_applies() -> None:
    assert not applies("", Filters(), "m")
    assert not applies("", Filters(strip_params=" , model"), "m")
    assert applies("x", Filters(), "m")
    assert applies("", Filters(set_params_by_id={"m": {"a": 1}}), "m")
    assert not applies("", Filters(set_params_by_id={"m": {"a": 1}}), "other")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.text(alphabet="abm.", min_size=1, max_size=6).filter(lambda k: "" not in k.split("."))
objects = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.dictionaries(st.text(alphabet="abm", max_size=2), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(alphabet="abm", max_size=2), objects, max_size=4), keys, json_values)
def test_set_then_read_back(body: dict[str, Any], key: str, value: Any) -> None:
    body = copy.deepcopy(body)
    set_path(body, key, value)
    node: Any = body
    for segment in parse_path(key):
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    assert node == value


@given(
    st.dictionaries(st.text(max_size=4), json_values, max_size=4),
    st.text(max_size=20),
    st.dictionaries(keys, json_values, max_size=3),
)
def test_model_is_never_changed_by_filters(
    body: dict[str, Any], strip: str, params: dict[str, Any]
) -> None:
    body = {**body, "model": "keep"}
    out = apply(
        body, use_model_name="", filters=Filters(strip, params, {"keep": params}), requested="keep"
    )
    assert out["model"] == "keep"
