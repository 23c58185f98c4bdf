"""Who is calling, and how much they may: the HTTP side of access and abuse protection.

A pure-ASGI middleware (Starlette's `BaseHTTPMiddleware` would break the context variables
it sets) in front of every route:

1. `Authorization: Bearer <key>` is checked (`service.auth.KeyStore`): a malformed, unknown
   or revoked key is 401 (`UNAUTHENTICATED`, with `WWW-Authenticate`), whatever
   `NEWSGRAPH_AUTH` says. Without a key the caller is anonymous; with
   `NEWSGRAPH_AUTH=required` and `NEWSGRAPH_ANONYMOUS_READS` off that is 401 too.
2. The caller's budget (`service.rate_limit`) is charged: GraphQL requests by their cost
   (`service.graphql.limits.QueryCost` charges once the document is validated), anything
   else 1 point. Over budget: 429 with `Retry-After`.
3. Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
   (seconds), and GraphQL answers that failed for want of a key, a role or budget get
   their HTTP status (401, 403, 429).

`/healthz`, `/readyz` and `/metrics` are exempt (probes and scrapers carry no keys). The
client address is the connection's peer: behind a proxy, run uvicorn with
`--forwarded-allow-ips` set to the proxy's addresses so the `X-Forwarded-For` client counts.
"""

from __future__ import annotations

import logging
from typing import Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import ANONYMOUS, LOCAL, KeyStore, Principal, acting_as, server_secret
from service.config import Settings
from service.errors import NewsgraphError, RateLimited, Unauthenticated
from service.observability import set_key_id
from service.rate_limit import Budget, RateLimits, RequestAccess, in_request

__all__ = ["EXEMPT_PATHS", "AccessMiddleware"]

log = logging.getLogger("newsgraph.auth")

EXEMPT_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
GRAPHQL_PATH: Final = "/graphql"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AccessMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.secret = server_secret(settings)  # fails fast on a missing production secret
        self.limits = RateLimits(settings)
        self._keys: KeyStore | None = None

    def _key_store(self, scope: Scope) -> KeyStore:
        db = scope["state"]["db"]
        if self._keys is None or self._keys.db is not db:
            self._keys = KeyStore(db, self.secret, ttl=self.settings.key_cache_ttl)
        return self._keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        graphql = scope["path"] == GRAPHQL_PATH
        client = _client(scope)
        try:
            principal = await self._principal(scope)
        except NewsgraphError as exc:
            await self._refuse(scope, send, exc, graphql=graphql, budget=None)
            return
        set_key_id(principal.key_id)
        access = RequestAccess(principal, client, self.limits, cacheable=scope["method"] == "GET")
        if not graphql:
            budget = await self.limits.charge(principal, client, 1)
            access.budget, access.charged = budget, True
            if budget is not None and not budget.allowed:
                error = RateLimited(
                    f"Rate limit exceeded: {budget.limit:,} points per minute; retry in "
                    f"{budget.reset_seconds} s.",
                    retry_after=budget.reset_seconds,
                )
                await self._refuse(scope, send, error, graphql=False, budget=budget)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not access.charged:  # a GraphQL request that never got to be costed
                    access.budget = await self.limits.charge(principal, client, 1)
                    access.charged = True
                headers = list(message.get("headers", ()))
                if access.budget is not None:
                    headers += access.budget.headers()
                status = message["status"]
                if access.status is not None and graphql and status == 200:
                    status = access.status
                if access.retry_after is not None:
                    headers.append((b"retry-after", str(access.retry_after).encode()))
                if status == 401:
                    headers.append((b"www-authenticate", b'Bearer realm="newsgraph"'))
                message = {**message, "status": status, "headers": headers}
            await send(message)

        with acting_as(principal), in_request(access):
            await self.app(scope, receive, send_with_headers)

    async def _principal(self, scope: Scope) -> Principal:
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("Send the API key as `Authorization: Bearer <key>`.")
            return await self._key_store(scope).authenticate(token.strip())
        if self.settings.auth == "off":
            return LOCAL
        if self.settings.anonymous_reads:
            return ANONYMOUS
        raise Unauthenticated("This service needs an API key: send `Authorization: Bearer <key>`.")

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        error: NewsgraphError,
        *,
        graphql: bool,
        budget: Budget | None,
    ) -> None:
        body: dict[str, object]
        if graphql:
            body = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]}
        else:
            body = {"error": {"code": error.code, "message": error.message}}
        payload = orjson.dumps(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if budget is not None:
            headers += budget.headers()
        if isinstance(error, RateLimited):
            headers.append((b"retry-after", str(error.retry_after).encode()))
        if error.http_status == 401:
            headers.append(
                (b"www-authenticate", b'Bearer realm="newsgraph", error="invalid_token"')
            )
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
