"""Errors a client can cause or must hear about, each with a stable code.

    NewsgraphError            code                  HTTP   when
    ├── BadInput              BAD_INPUT             400    a malformed id, filter or argument
    │   └── BadCursor         BAD_CURSOR            400    a cursor not ours, or for another order
    ├── LimitExceeded         LIMIT_EXCEEDED        400    a page size or other limit exceeded
    ├── Unauthenticated       UNAUTHENTICATED       401    a key is needed but missing, or is bad
    ├── Forbidden             FORBIDDEN             403    the key's role or sources do not allow it
    ├── RateLimited           RATE_LIMITED          429    the key's (or address's) budget is spent
    └── ServiceUnavailable    SERVICE_UNAVAILABLE   503    the database cannot be reached now

Any other exception is unexpected: the GraphQL layer masks it (message plus request id) and
logs it with its stack. Expected absence (an unknown id or URL) is `None`, not an error.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadCursor",
    "BadInput",
    "Forbidden",
    "LimitExceeded",
    "NewsgraphError",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthenticated",
]


class NewsgraphError(Exception):
    """An error whose message is safe and useful to show to the client."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadInput(NewsgraphError):
    code = "BAD_INPUT"
    http_status = 400


class BadCursor(BadInput):
    code = "BAD_CURSOR"


class LimitExceeded(NewsgraphError):
    code = "LIMIT_EXCEEDED"
    http_status = 400


class ServiceUnavailable(NewsgraphError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503


class Unauthenticated(NewsgraphError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(NewsgraphError):
    code = "FORBIDDEN"
    http_status = 403


class RateLimited(NewsgraphError):
    """The budget is spent; `retry_after` is whole seconds until it is refilled."""

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
