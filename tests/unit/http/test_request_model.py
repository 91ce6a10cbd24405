import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http import multipart
from swapd.http.errors import ApiError
from swapd.http.request_model import extract, model_text, truthy

JSON = "application/json"


def form_body(fields: list[tuple[str, str | bytes, str | None]], boundary: str = "XyZ") -> bytes:
    parts = []
    for name, value, filename in fields:
        data = value if isinstance(value, bytes) else value.encode()
        disposition = f'form-data; name="{name}"'
        headers = []
        if filename:
            disposition += f'; filename="{filename}"'
            headers.append(("Content-Type", "audio/wav"))
        parts.append(
            multipart.Part(name, filename, (("Content-Disposition", disposition), *headers), data)
        )
    return multipart.build(parts, boundary.encode())


def test_json_model_and_stream() -> None:
    req = extract("POST", JSON, b"model=ignored", b'{"model":"m1","stream":true}')
    assert (req.model, req.stream, req.kind) == ("m1", True, "json")
    assert req.json == {"model": "m1", "stream": True}


def test_json_body_is_built_only_when_asked() -> None:
    req = extract("POST", JSON, b"", b'{"messages":[{"role":"user"}],"model":{"a":1},"stream":0}')
    assert (req.model, req.stream, req.decoded) == ('{"a":1}', False, None)
    assert req.json == {"messages": [{"role": "user"}], "model": {"a": 1}, "stream": 0}
    assert req.body_object() is req.json
    assert extract("POST", JSON, b"", b'{"model":"a","model":"b"}').model == "b"


@pytest.mark.parametrize(
    "body", [b'{"model":"m","x":[1,,2]}', b'{"model":"m","x":"\\q"}', b'{"model":"m"} 1']
)
def test_malformed_json_is_refused_as_the_full_decoder_refuses_it(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError) as full:
        msgspec.json.decode(body)
    with pytest.raises(ApiError) as info:
        extract("POST", JSON, b"", body)
    assert (info.value.status, info.value.message) == (400, f"malformed JSON body: {full.value}")


def test_a_number_beyond_float_range_is_left_to_the_upstream() -> None:
    """Only members that are read are converted; a filter that rewrites the body reads all."""
    req = extract("POST", JSON, b"", b'{"model":"m","seed":1e999}')
    assert req.model == "m"
    with pytest.raises(ApiError) as info:
        req.body_object()
    assert info.value.status == 400


def test_json_content_type_with_charset() -> None:
    req = extract("POST", "application/json; charset=utf-8", b"", b'{"model":"m"}')
    assert (req.model, req.stream) == ("m", False)


def test_json_without_model_is_empty() -> None:
    assert extract("POST", JSON, b"", b'{"messages":[]}').model == ""


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1,2]",
        b'"text"',
        b'{"model": "\xff\xfe"}',
        b'{"model": "m", "x": "\xc3"}',
        b'{"\xff": 1}',
    ],
)
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        extract("POST", JSON, b"", body)
    assert info.value.status == 400
    assert "malformed JSON" in info.value.message


def test_non_json_post_uses_query_only() -> None:
    req = extract("POST", "text/plain", b"model=q", b'{"model":"body"}')
    assert req.model == "q"
    assert extract("POST", "", b"", b'{"model":"body"}').model == ""


def test_urlencoded_body_wins_over_query() -> None:
    req = extract("POST", "application/x-www-form-urlencoded", b"model=q", b"model=b&stream=true")
    assert (req.model, req.stream) == ("b", True)
    assert extract("POST", "application/x-www-form-urlencoded", b"model=q", b"x=1").model == "q"


def test_get_uses_query() -> None:
    req = extract("GET", "", b"model=m%2Fx&stream=true", b"")
    assert (req.model, req.stream, req.kind) == ("m/x", True, "query")
    assert extract("GET", "", b"stream=1", b"").stream is False


def test_multipart_field_and_query_precedence() -> None:
    body = form_body([("file", b"\x00RIFF", "a.wav"), ("model", "whisper", None)])
    ctype = "multipart/form-data; boundary=XyZ"
    req = extract("POST", ctype, b"", body)
    assert (req.model, req.kind) == ("whisper", "multipart")
    assert req.parts is not None and [p.name for p in req.parts] == ["file", "model"]
    assert extract("POST", ctype, b"model=fromquery", body).model == "fromquery"


def test_multipart_malformed_is_400() -> None:
    with pytest.raises(ApiError) as info:
        extract("POST", "multipart/form-data; boundary=XyZ", b"", b"--XyZ\r\ngarbage")
    assert info.value.status == 400
    with pytest.raises(ApiError):
        extract("POST", "multipart/form-data", b"", b"")


def test_multipart_rebuild_keeps_order_and_headers() -> None:
    body = form_body([("a", "1", None), ("model", "m", None), ("file", b"\x01\x02", "x.wav")])
    parts = multipart.parse(body, b"XyZ")
    rebuilt = multipart.parse(
        multipart.build(multipart.with_field(parts, "model", "n"), b"XyZ"), b"XyZ"
    )
    assert [(p.name, p.filename) for p in rebuilt] == [
        ("a", None),
        ("model", None),
        ("file", "x.wav"),
    ]
    assert multipart.field_value(rebuilt, "model") == "n"
    assert rebuilt[2].data == b"\x01\x02"
    assert ("Content-Type", "audio/wav") in rebuilt[2].headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (0.5, True),
        ("true", True),
        ("1", True),
        ("t", True),
        ("false", False),
        ("yes", False),
        (None, False),
        ([], False),
    ],
)
def test_truthy(value: object, expected: bool) -> None:
    assert truthy(value) is expected


@given(st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=3)))
def test_model_text_of_non_strings_is_json(value: object) -> None:
    assert json.loads(model_text(value)) == value


def test_model_text_of_string_and_null() -> None:
    assert model_text("m") == "m"
    assert model_text(None) == ""


@given(st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8", "replace")))
def test_no_json_body_escapes_as_anything_but_a_400(body: bytes) -> None:
    """Whatever a client sends as a JSON body, the answer is a model or a clear 400."""
    for data in (body, b'{"model": "m", "x": "' + body + b'"}'):
        try:
            req = extract("POST", JSON, b"", data)
            req.body_object()
        except ApiError as exc:
            assert exc.status == 400


def test_forms_over_their_bounds_are_413() -> None:
    from swapd.http.request_model import FormLimits

    limits = FormLimits(max_parts=3, max_field=10)
    form = "application/x-www-form-urlencoded"
    with pytest.raises(ApiError) as refused:
        extract("POST", form, b"", b"a&b&c&d", limits)
    assert (refused.value.status, refused.value.reason) == (413, "form_too_large")
    with pytest.raises(ApiError):
        extract("POST", form, b"", b"model=" + b"x" * 11, limits)
    assert extract("POST", form, b"", b"model=m&stream=true", limits).model == "m"


def test_with_form_model_keeps_every_other_byte() -> None:
    from swapd.http.request_model import with_form_model

    body = b"a=%2F1&model=p%2Fx&mod%65l=p%2Fy&b=+"
    assert with_form_model(body, "x y/z") == b"a=%2F1&model=x+y%2Fz&model=x+y%2Fz&b=+"


def test_json_nested_too_deeply_is_a_400() -> None:
    deep = b'{"model": "m", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(ApiError) as refused:
        extract("POST", "application/json", b"", deep)
    assert refused.value.status == 400 and "nested too deeply" in refused.value.message
