"""Errors a `Router.lease` raises, with the HTTP status the handler must answer.

Each carries `status`, `code` and `message` so the HTTP layer can build the
OpenAI-style error envelope without knowing the router (docs/compat.md, Errors).
"""

from __future__ import annotations

from swapd.router.events import Failure


class RouterError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, model: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.swap_id: int | None = None
        """The swap the request waited for before this error, if any."""
        self.load_wait_s: float | None = None
        """Seconds it waited for that swap."""


class ModelNotFound(RouterError):
    status = 404
    code = "model_not_found"


class TooManyRequests(RouterError):
    """Admission refused by `concurrencyLimit`: answer 429 with `Retry-After`."""

    status = 429
    code = "concurrency_limit"

    def __init__(self, message: str, *, model: str = "", retry_after: int = 1) -> None:
        super().__init__(message, model=model)
        self.retry_after = retry_after


class LoadFailed(RouterError):
    """The swap that should have made the model ready failed."""

    status = 500
    code = "load_failed"

    def __init__(self, message: str, *, model: str = "", reason: str = "", log_tail: str = ""):
        super().__init__(message, model=model)
        self.reason = reason
        self.log_tail = log_tail


class RequestAborted(RouterError):
    """The request was cut short by an unload of its model or by shutdown.

    swapd answers 503 (retryable) where llama-swap answered 500 "unspecific
    error": the request did nothing wrong and a retry may well succeed.
    """

    status = 503
    code = "request_aborted"


class CannotFit(RouterError):
    """The model needs more of a resource than `resources.capacity` has (or than is
    left beside the models never evicted): it can never run, so it fails at once."""

    status = 500
    code = "insufficient_resources"


def error_for(failure: Failure) -> RouterError:
    """The exception a lease raises for a scheduler `Failure`."""
    match failure.kind:
        case "not_found":
            return ModelNotFound(failure.message, model=failure.model)
        case "too_many":
            return TooManyRequests(failure.message, model=failure.model)
        case "load_failed":
            return LoadFailed(
                failure.message,
                model=failure.model,
                reason=failure.reason,
                log_tail=failure.log_tail,
            )
        case "too_big":
            return CannotFit(failure.message, model=failure.model)
        case "unloaded" | "shutdown":
            return RequestAborted(failure.message, model=failure.model)
    raise AssertionError(f"unknown failure kind {failure.kind!r}")
