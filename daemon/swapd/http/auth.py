"""API-key authentication (docs/compat.md, Authentication).

The key is taken from `Authorization: Basic` (the password part), then
`Authorization: Bearer`, then `x-api-key`. Keys are compared in constant time.
Deviation from llama-swap latest: after a successful check the client's
`Authorization` and `x-api-key` are never forwarded to local upstreams (they
are the client's swapd credentials, not the upstream's); a peer gets its own
configured key instead.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from swapd.http.errors import ApiError

UNAUTHORIZED_MESSAGE = "unauthorized: invalid or missing API key"
CHALLENGE = {"www-authenticate": 'Basic realm="swapd"'}
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})


def extract_api_key(authorization: str | None, x_api_key: str | None) -> str:
    """The candidate key of a request, or "" when it carries none."""
    basic = bearer = ""
    if authorization and " " in authorization:
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            bearer = credentials
        elif scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            if ":" in decoded:
                basic = decoded.partition(":")[2]
    return basic or bearer or (x_api_key or "")


def key_matches(candidate: str, keys: Iterable[str]) -> bool:
    """True when `candidate` equals one of `keys`; every key is compared, in constant time."""
    given = candidate.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def check(keys: tuple[str, ...], authorization: str | None, x_api_key: str | None) -> None:
    """Raise the 401 ApiError unless auth is off or the request carries a valid key."""
    if not keys:
        return
    candidate = extract_api_key(authorization, x_api_key)
    if not candidate or not key_matches(candidate, keys):
        raise ApiError(401, UNAUTHORIZED_MESSAGE, headers=dict(CHALLENGE))
