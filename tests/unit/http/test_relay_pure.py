from swapd.http.app import DEFAULT_ALLOW_HEADERS, allow_headers
from swapd.http.metrics import parse_usage
from swapd.http.model_routes import (
    forward_path,
    is_model_route,
    join_url,
    metric_route,
    router_error,
)
from swapd.http.relay import content_length, request_headers, response_headers
from swapd.router.errors import LoadFailed, ModelNotFound, RequestAborted, TooManyRequests


def test_request_headers_drop_hop_by_hop_and_credentials() -> None:
    headers = [
        (b"Host", b"swapd:8080"),
        (b"Connection", b"keep-alive, X-Private"),
        (b"X-Private", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"12"),
        (b"Authorization", b"Bearer k"),
        (b"X-Api-Key", b"k"),
        (b"Accept-Encoding", b"br"),
        (b"Content-Type", b"application/json"),
        (b"X-Forwarded-For", b"10.0.0.1"),
    ]
    out = request_headers(headers, drop_credentials=True, client_ip="127.0.0.1")
    assert out == [
        (b"content-type", b"application/json"),
        (b"x-forwarded-for", b"10.0.0.1, 127.0.0.1"),
    ]
    kept = request_headers(headers, drop_credentials=False, extra=[(b"x-api-key", b"peer")])
    assert (b"authorization", b"Bearer k") in kept
    assert [v for n, v in kept if n == b"x-api-key"] == [b"peer"]


def test_response_headers() -> None:
    out = response_headers(
        [
            (b"Content-Type", b"text/event-stream; charset=utf-8"),
            (b"Date", b"x"),
            (b"Server", b"llama"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Accel-Buffering", b"yes"),
            (b"X-Request-Id", b"7"),
        ]
    )
    assert out == [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"x-request-id", b"7"),
        (b"x-accel-buffering", b"no"),
    ]
    assert response_headers([(b"content-type", b"application/json")]) == [
        (b"content-type", b"application/json")
    ]


def test_content_length() -> None:
    assert content_length([(b"Content-Length", b"42")]) == 42
    assert content_length([(b"content-length", b"x")]) is None
    assert content_length([]) is None


def test_paths() -> None:
    assert forward_path("/v/chat/completions") == "/chat/completions"
    assert forward_path("/audioapi/v1/tasks/run") == "/v1/tasks/run"
    assert forward_path("/v1/embeddings") == "/v1/embeddings"
    assert join_url("http://h:1/base/", "/v1/x", b"a=1") == "http://h:1/base/v1/x?a=1"
    assert join_url("http://h:1", "/props", b"") == "http://h:1/props"
    assert is_model_route("POST", "/v1/chat/completions") is True
    assert is_model_route("GET", "/v1/chat/completions") is False
    assert is_model_route("GET", "/props") is True
    assert is_model_route("POST", "/props") is False
    assert is_model_route("GET", "/v1/models") is None


def test_router_errors_map_to_envelopes() -> None:
    err = router_error(TooManyRequests("busy", model="m", retry_after=2))
    assert (err.status, err.reason, err.headers["retry-after"]) == (429, "concurrency_limit", "2")
    err = router_error(
        LoadFailed("m failed to start", model="m", reason="exited with 3", log_tail="a\nb")
    )
    assert err.status == 500
    assert err.message == "m failed to start: exited with 3\nlast log lines of m:\na\nb"
    assert router_error(ModelNotFound("no m")).status == 404
    assert router_error(RequestAborted("unloaded")).status == 503


def test_parse_usage() -> None:
    assert parse_usage(b'{"usage":{"prompt_tokens":3,"completion_tokens":5}}') == (3, 5)
    sse = b'data: {"usage":{"input_tokens":9}}\n\ndata: {"usage":{"output_tokens":4}}\n\n'
    assert parse_usage(sse) == (9, 4)
    assert parse_usage(b"binary audio") == (0, 0)


def test_allow_headers() -> None:
    assert allow_headers("Valid, Bad Header") == "Valid"
    assert allow_headers("  X-Custom ,  Accept ") == "X-Custom, Accept"
    assert allow_headers("Bad@Header") == ""
    assert allow_headers("") == DEFAULT_ALLOW_HEADERS


def test_metric_routes_are_a_bounded_set() -> None:
    assert metric_route("/v1/chat/completions") == "/v1/chat/completions"
    assert metric_route("/v/chat/completions") == "/chat/completions"
    assert metric_route("/upstream/llama/whatever/the/client/asks") == "/upstream"
    assert metric_route("/upstream/llama/other?x") == "/upstream"
    assert metric_route("/no/such/route") == "other"
