import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http.auth import check, extract_api_key, key_matches
from swapd.http.errors import ApiError


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer k1", None, "k1"),
        ("bearer k1", None, "k1"),
        ("BEARER  k1", None, " k1"),
        ("Bearerk1", None, ""),
        (basic("u", "pw"), None, "pw"),
        (basic("u", "p:w"), None, "p:w"),
        ("Basic !!!notbase64", "xk", "xk"),
        ("Basic " + base64.b64encode(b"nocolon").decode(), "xk", "xk"),
        ("Bearer k1", "xk", "k1"),
        (None, "xk", "xk"),
        (None, None, ""),
        ("Token abc", None, ""),
    ],
)
def test_extract_api_key(authorization: str | None, x_api_key: str | None, expected: str) -> None:
    assert extract_api_key(authorization, x_api_key) == expected


def test_check_disabled_without_keys() -> None:
    check((), None, None)


def test_check_rejects_with_challenge() -> None:
    with pytest.raises(ApiError) as info:
        check(("secret",), "Bearer wrong", None)
    assert info.value.status == 401
    assert info.value.headers["www-authenticate"].startswith("Basic realm=")
    with pytest.raises(ApiError):
        check(("secret",), None, None)


def test_check_accepts_each_form() -> None:
    keys = ("a", "secret")
    check(keys, "Bearer secret", None)
    check(keys, basic("anyone", "secret"), None)
    check(keys, None, "a")


@given(st.text(), st.lists(st.text(min_size=1), max_size=4))
def test_key_matches_is_membership(candidate: str, keys: list[str]) -> None:
    assert key_matches(candidate, keys) == (candidate in keys)
