"""`GET /api/activity`: finished requests as a JSON array, for tools that speak HTTP.

The records are those `swapctl activity --json` prints (the same keys),
newest first. Query parameters: `model` (an ID or alias), `outcome`
(`done`, `client_gone`, `aborted`, `failed`), `since` and `until` (Unix
seconds, or a duration ago such as `10m`), `limit` (default 100, at most
10000). A bad parameter is a 400 with the reason; a daemon that keeps no
history answers 503.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import msgspec

from swapctl.trace import BadTime, parse_when
from swapd.history import ActivityQuery, HistoryUnavailable, RequestRecord
from swapd.history.queries import DEFAULT_LIMIT, MAX_LIMIT
from swapd.history.records import OUTCOMES, Outcome
from swapd.http.errors import ApiError
from swapd.http.services import Services

PARAMS = frozenset({"model", "outcome", "since", "until", "limit"})


def parse_query(args: Mapping[str, str], now: float) -> ActivityQuery:
    """The question a request's query parameters ask; ApiError(400) says what is wrong."""
    unknown = sorted(set(args) - PARAMS)
    if unknown:
        raise ApiError(
            400, f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(sorted(PARAMS))}"
        )
    outcome: Outcome | None = None
    raw_outcome = args.get("outcome")
    if raw_outcome is not None:
        if raw_outcome not in OUTCOMES:
            raise ApiError(
                400, f"outcome must be one of {', '.join(OUTCOMES)}, not {raw_outcome!r}"
            )
        outcome = next(o for o in OUTCOMES if o == raw_outcome)
    limit = DEFAULT_LIMIT
    raw_limit = args.get("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    return ActivityQuery(
        model=args.get("model") or None,
        outcome=outcome,
        since=_when(args, "since", now),
        until=_when(args, "until", now),
        limit=limit,
    )


def _when(args: Mapping[str, str], key: str, now: float) -> float | None:
    value = args.get(key)
    if value is None:
        return None
    try:
        stamp = float(value)
    except ValueError:
        stamp = None
    if stamp is not None and stamp > 1e9:  # Unix seconds
        return stamp
    try:
        return parse_when(value, now)
    except BadTime as exc:
        raise ApiError(400, f"{key}: {exc}") from None


async def activity(services: Services, args: Mapping[str, str]) -> list[RequestRecord]:
    query = parse_query(args, time.time())
    store = services.records.store
    if store is None:
        raise ApiError(503, "this daemon keeps no history (history.enabled)", "history_unavailable")
    if query.model is not None:
        model = services.resolver.local_id(query.model) or query.model
        query = msgspec.structs.replace(query, model=model)
    try:
        return await store.activity(query)
    except HistoryUnavailable as exc:
        raise ApiError(503, str(exc), "history_unavailable") from None
