"""Host, Origin and Content-Type decisions on loopback without API keys (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from swapd.http import origin
from swapd.http.budget import BodyBudget
from swapd.http.errors import ApiError


def check(**overrides: Any) -> ApiError | None:
    args: dict[str, Any] = {
        "local_address": "127.0.0.1",
        "api_keys": False,
        "allowed": (),
        "method": "POST",
        "path": "/v1/chat/completions",
        "model_route": True,
        "host": "127.0.0.1:8080",
        "origin": None,
        "content_type": "application/json",
    }
    args.update(overrides)
    return origin.check(**args)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost", ("localhost", "")),
        ("LocalHost:80", ("localhost", "80")),
        ("[::1]:8080", ("::1", "8080")),
        ("[::1]", ("::1", "")),
        ("::1", ("::1", "")),
        ("a.b:1", ("a.b", "1")),
    ],
)
def test_split_host(value: str, expected: tuple[str, str]) -> None:
    assert origin.split_host(value) == expected


def test_served_as_usual() -> None:
    assert check() is None
    assert check(host=None) is None
    assert check(origin="http://localhost:5173") is None
    assert check(content_type="application/vnd.api+json") is None


def test_only_on_loopback_without_keys() -> None:
    assert check(api_keys=True, host="evil.example") is None
    assert check(local_address="10.0.0.5", host="evil.example") is None
    assert check(local_address="::1", host="evil.example") is not None
    assert check(local_address=None, host="evil.example") is None


def test_refusals() -> None:
    host = check(host="evil.example")
    assert host is not None and (host.status, host.reason) == (403, "host_not_allowed")
    cross = check(origin="https://evil.example")
    assert cross is not None and (cross.status, cross.reason) == (403, "origin_not_allowed")
    for content_type in ("text/plain", "", None, "application/x-www-form-urlencoded"):
        refused = check(content_type=content_type)
        assert refused is not None and (refused.status, refused.reason) == (415, "content_type")


def test_form_routes_take_forms_and_bodiless_requests_need_no_type() -> None:
    path = "/v1/audio/transcriptions"
    assert check(path=path, content_type="multipart/form-data; boundary=x") is None
    assert check(path=path, content_type="text/plain") is not None
    assert check(method="GET", content_type=None) is None
    assert check(model_route=False, content_type="text/plain") is None


def test_allowed_hosts_with_and_without_port() -> None:
    assert check(host="box", allowed=("box",)) is None
    assert check(host="box:8080", allowed=("box",)) is None
    assert check(host="box:8080", allowed=("box:9090",)) is not None
    assert check(origin="http://box:9090", allowed=("box:9090",)) is None


def test_the_budget_refuses_past_its_limit_and_gives_back_on_release() -> None:
    budget = BodyBudget()
    first, second = budget.hold(100), budget.hold(100)
    first.take(60)
    with pytest.raises(ApiError) as refused:
        second.take(41)
    assert refused.value.status == 503 and refused.value.headers["retry-after"] == "1"
    second.take(40)
    first.release()
    second.take(60)
    assert budget.held == 100
    second.release()
    assert budget.held == 0
