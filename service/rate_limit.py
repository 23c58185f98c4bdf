"""Rate limits by cost: a budget of points per minute per API key, or per client address.

Built on `limits` (fixed one-minute windows). Each key's budget depends on its role
(`NEWSGRAPH_RATE_LIMIT_READER|INGEST|ADMIN`); callers without a key share one budget per
client IP (`NEWSGRAPH_RATE_LIMIT_ANONYMOUS`). A budget of 0 turns that limit off.

Storage is `NEWSGRAPH_RATE_LIMIT_STORAGE`: `memory://` (the default) counts in this process,
so with several replicas (or workers) each one limits on its own and a client may spend up
to N times its budget; a shared `redis://host:6379` storage makes every replica count
together.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from limits import RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string

from service.auth import Principal, Role
from service.config import ConfigError, Settings
from service.errors import NewsgraphError, RateLimited

__all__ = ["Budget", "RateLimits", "RequestAccess", "in_request", "request_access"]

NAMESPACE: Final = "newsgraph"


@dataclass(frozen=True, slots=True)
class Budget:
    """One caller's budget after a request: what the `RateLimit-*` headers say."""

    limit: int
    remaining: int
    reset_seconds: int  # until the window starts over
    allowed: bool = True
    requested: int = 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]


class RateLimits:
    """The budgets of one process (and of every process sharing its storage)."""

    def __init__(self, settings: Settings) -> None:
        uri = settings.rate_limit_storage
        if "://" in uri and not uri.startswith("async+"):
            uri = "async+" + uri
        try:
            storage = storage_from_string(uri)
        except ConfigurationError as exc:
            raise ConfigError(f"NEWSGRAPH_RATE_LIMIT_STORAGE is not usable: {exc}") from None
        self._limiter = FixedWindowRateLimiter(storage)
        self._budgets: dict[Role | None, int] = {
            None: settings.rate_limit_anonymous,
            Role.READER: settings.rate_limit_reader,
            Role.INGEST: settings.rate_limit_ingest,
            Role.ADMIN: settings.rate_limit_admin,
        }

    def identity(self, principal: Principal, client: str) -> tuple[int, str]:
        """The budget (points per minute, 0: unlimited) and the key it is counted under."""
        if principal.key_id is not None:
            return self._budgets[principal.role], f"key:{principal.key_id}"
        if principal.role is not None:
            # No key with NEWSGRAPH_AUTH=off: a local or trusted setup, not limited.
            return 0, "local"
        return self._budgets[None], f"ip:{client}"

    async def charge(self, principal: Principal, client: str, cost: int) -> Budget | None:
        """Spend `cost` points if the budget has them; None when this caller is unlimited.

        A request that does not fit is refused without spending anything (`allowed` False).
        """
        amount, key = self.identity(principal, client)
        if amount <= 0:
            return None
        item = RateLimitItemPerMinute(amount, namespace=NAMESPACE)
        cost = max(cost, 0)
        allowed = cost == 0 or await self._limiter.test(item, key, cost=cost)
        if allowed and cost:
            allowed = await self._limiter.hit(item, key, cost=cost)
        stats = await self._limiter.get_window_stats(item, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Budget(
            limit=amount,
            remaining=max(0, stats.remaining),
            reset_seconds=reset,
            allowed=allowed,
            requested=cost,
        )


@dataclass(slots=True)
class RequestAccess:
    """What the HTTP layer and the GraphQL layer share about one request's access.

    The HTTP layer (`service.rest.access.AccessMiddleware`) makes it and sends the
    `RateLimit-*` headers from `budget`; the GraphQL layer charges the query's cost into it
    and asks for a status (401, 403, 429) through `fail`.
    """

    principal: Principal
    client: str
    limits: RateLimits | None
    budget: Budget | None = None
    charged: bool = False
    status: int | None = None
    retry_after: int | None = None
    # GET answers may be cached and compared by ETag: their bodies leave out what changes
    # from one request to the next (the remaining budget, which the headers carry anyway).
    cacheable: bool = False

    def fail(self, error: NewsgraphError) -> None:
        if self.status is None:
            self.status = error.http_status
            if isinstance(error, RateLimited):
                self.retry_after = error.retry_after


_access: ContextVar[RequestAccess | None] = ContextVar("newsgraph_request_access", default=None)


def request_access() -> RequestAccess | None:
    """The current request's access state (None outside an HTTP request, as in unit tests)."""
    return _access.get()


@contextlib.contextmanager
def in_request(access: RequestAccess) -> Iterator[RequestAccess]:
    token = _access.set(access)
    try:
        yield access
    finally:
        _access.reset(token)
