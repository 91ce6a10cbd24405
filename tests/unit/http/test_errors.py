import json

import pytest

from swapd.http.errors import ApiError, envelope, render_error, too_many_requests, type_and_code


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, "invalid_request_error", "bad_request"),
        (401, "authentication_error", "unauthorized"),
        (403, "authentication_error", "forbidden"),
        (404, "invalid_request_error", "not_found"),
        (409, "invalid_request_error", "conflict"),
        (413, "invalid_request_error", "invalid_request"),
        (429, "rate_limit_error", "rate_limit_exceeded"),
        (502, "server_error", "bad_gateway"),
        (503, "server_error", "service_unavailable"),
        (504, "server_error", "gateway_timeout"),
        (418, "invalid_request_error", "invalid_request"),
        (500, "server_error", "internal_error"),
        (507, "server_error", "internal_error"),
    ],
)
def test_type_and_code_by_status(status: int, kind: str, code: str) -> None:
    assert type_and_code(status) == (kind, code)


def test_envelope_key_order_and_shape() -> None:
    body = envelope(404, 'no "x" here')
    assert body == (
        b'{"src":"swapd","error":{"message":"no \\"x\\" here","type":"invalid_request_error",'
        b'"param":null,"code":"not_found"}}'
    )
    assert json.loads(body)["error"]["message"] == 'no "x" here'


def test_envelope_code_override() -> None:
    """llama-swap's own override of the code, the concurrency limit, is kept."""
    assert json.loads(envelope(429, "Too many requests", "concurrency_limit"))["error"] == {
        "message": "Too many requests",
        "type": "rate_limit_error",
        "param": None,
        "code": "concurrency_limit",
    }


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (404, "model_not_found", "not_found"),
        (500, "load_failed", "internal_error"),
        (400, "missing_model", "bad_request"),
        (413, "request_too_large", "invalid_request"),
        (503, "shutting_down", "service_unavailable"),
        (503, "request_aborted", "service_unavailable"),
    ],
)
def test_a_finer_reason_never_changes_the_code(status: int, reason: str, code: str) -> None:
    """Clients matching on `code` see llama-swap's; swapd's finer reason has its own key."""
    error = json.loads(envelope(status, "m", reason))["error"]
    assert list(error) == ["message", "type", "param", "code", "reason"]
    assert (error["code"], error["reason"]) == (code, reason)
    assert error["type"] == type_and_code(status)[0]


def test_negotiation_order() -> None:
    assert render_error(400, "bad <b>", "text/plain, text/html") == (
        "text/plain",
        b"swapd: bad <b>",
    )
    kind, body = render_error(400, "bad <b>", "text/html")
    assert kind == "text/html"
    assert b"bad &lt;b&gt;" in body
    assert render_error(400, "bad", "application/json")[0] == "application/json"
    assert render_error(400, "bad", "")[0] == "application/json"


def test_too_many_requests_has_retry_after() -> None:
    err = too_many_requests(0.2)
    assert isinstance(err, ApiError)
    assert (err.status, err.reason, err.headers) == (429, "concurrency_limit", {"retry-after": "1"})
    assert too_many_requests(3.4).headers["retry-after"] == "3"
