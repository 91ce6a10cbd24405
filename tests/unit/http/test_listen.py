"""`--listen` addresses (pure)."""

from __future__ import annotations

import pytest

from swapd.http.server import ListenError, parse_listen


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), ("host:1", ("host", 1))],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8080", ":8080", "host", "host:x", "::1:80", "h:70000"])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ListenError):
        parse_listen(listen)
