"""The bytes of request bodies held at once, every request together.

`maxRequestBodySize` bounds one body; this bounds them all, so that many
clients each sending a large body cannot make swapd hold gigabytes. A body
takes its share before it is read (all of its declared Content-Length at
once, a chunked one as it arrives) and gives it back when its request ends;
one that does not fit is refused with 503 and `Retry-After` rather than
waiting, so a client knows at once.
"""

from __future__ import annotations

from swapd.http.errors import ApiError

RETRY_AFTER = "1"


class BodyBudget:
    """The shared count; `hold(limit)` opens one request's share."""

    def __init__(self) -> None:
        self.held = 0

    def hold(self, limit: int) -> BodyHold:
        return BodyHold(self, limit)


class BodyHold:
    """One request's share of the budget; `release` it when the request ends."""

    def __init__(self, budget: BodyBudget, limit: int) -> None:
        self._budget = budget
        self._limit = limit
        self.size = 0

    def take(self, count: int) -> None:
        """Hold `count` more bytes, or raise the 503."""
        budget = self._budget
        if budget.held + count > self._limit:
            raise ApiError(
                503,
                f"swapd holds {budget.held} bytes of request bodies; {count} more would pass "
                f"its budget of {self._limit} (http.requestBodyBudget): retry shortly",
                "body_budget",
                {"retry-after": RETRY_AFTER},
            )
        budget.held += count
        self.size += count

    def release(self) -> None:
        self._budget.held -= self.size
        self.size = 0
