"""Who may reach swapd when it listens on loopback without API keys (pure decisions).

With no `apiKeys`, a loopback address is swapd's only protection, and a web
page in a browser on the same machine is on loopback too. Three checks close
the ways in, on every route, only in that mode:

- `Host` must name a loopback host (`localhost`, `*.localhost`, 127.0.0.0/8,
  `::1`) or one of `http.allowedHosts`: a DNS-rebinding page reaches swapd
  under its own name and gets 403, so it cannot read the answers.
- `Origin`, when a browser sends one, must name such a host too: a page on
  another site gets 403 for its requests and for their pre-flights, so it can
  neither send JSON nor read a model list.
- A model route that carries a body must say it is JSON (or, on a route
  that takes forms, a form): `text/plain`, a form or no `Content-Type` are
  what a page may send cross-site without asking first, and get 415.

A request without `Host` (HTTP/1.0 tools) passes the first check. The
decisions on names are cached: a client sends the same few over and over.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from swapd.http.errors import ApiError

FORM_ROUTES = frozenset({"/v1/audio/transcriptions", "/v1/images/edits"})
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@lru_cache(maxsize=256)
def is_loopback_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=256)
def split_host(value: str) -> tuple[str, str]:
    """(host, port) of a Host value: `name`, `name:port`, `[v6]`, `[v6]:port`; lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, ""
        rest = value[end + 1 :]
        return value[1:end], rest[1:] if rest.startswith(":") else ""
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:
        return value, ""
    return host, port


def is_loopback_name(host: str) -> bool:
    host = host.rstrip(".")
    return host == "localhost" or host.endswith(".localhost") or is_loopback_ip(host)


@lru_cache(maxsize=256)
def host_allowed(host: str, port: str, allowed: tuple[str, ...]) -> bool:
    if is_loopback_name(host):
        return True
    for entry in allowed:
        want_host, want_port = split_host(entry)
        if want_host == host and (not want_port or want_port == port):
            return True
    return False


@lru_cache(maxsize=256)
def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """An Origin header's host: loopback or allowed (`null` and garbage are not)."""
    try:
        parts = urlsplit(origin.strip())
        host = parts.hostname or ""
        port = str(parts.port or "")
    except ValueError:
        return False
    return bool(host) and host_allowed(host, port, allowed)


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and "+json" in media)


def check(
    *,
    local_address: str | None,
    api_keys: bool,
    allowed: tuple[str, ...],
    method: str,
    path: str,
    model_route: bool,
    host: str | None,
    origin: str | None,
    content_type: str | None,
) -> ApiError | None:
    """The refusal for a request, or None to serve it."""
    if api_keys or local_address is None or not is_loopback_ip(local_address):
        return None
    if host is not None:
        name, port = split_host(host)
        if not host_allowed(name, port, allowed):
            return ApiError(
                403,
                f"Host {host[:100]!r} is not a loopback name; swapd listens on loopback "
                "without apiKeys (add the name to http.allowedHosts, or set apiKeys)",
                "host_not_allowed",
            )
    if origin is not None and not origin_allowed(origin, allowed):
        return ApiError(
            403,
            f"requests from the web origin {origin[:100]!r} are refused; swapd listens on "
            "loopback without apiKeys (add its host to http.allowedHosts, or set apiKeys)",
            "origin_not_allowed",
        )
    if model_route and method not in BODYLESS:
        media = media_type(content_type or "")
        if is_json(media) or (path in FORM_ROUTES and media in FORM_TYPES):
            return None
        wanted = "application/json" + (" or a form" if path in FORM_ROUTES else "")
        shown = repr(media) if media else "none"
        return ApiError(
            415,
            f"Content-Type {shown} refused on {path}: send {wanted} (e.g. curl -H "
            "'Content-Type: application/json'); without apiKeys on loopback, only what a "
            "web page cannot send cross-site is served",
            "content_type",
        )
    return None
