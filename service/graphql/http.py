"""HTTP caching for GraphQL queries over GET: `Cache-Control`, a strong `ETag`, and 304.

A pure-ASGI wrapper around the GraphQL view. For a `GET /graphql` answered 200 without
errors it adds

- `ETag: "<sha256 of the body>"` (strong: the body is byte-for-byte the same);
- `Cache-Control: public, max-age=N` for anonymous requests, `private, max-age=N` for
  requests with an API key (a shared cache must not hand a partner's answer, with its
  rate-limit headers, to someone else), where N is the operation's entry in
  `OPERATION_MAX_AGE` or else `NEWSGRAPH_CACHE_MAX_AGE` (default 30 s);
- `Vary: Authorization`;

and answers `If-None-Match` with that ETag by 304 and no body (the query still ran: the
saving is the transfer, which is what matters on a phone). Answers with errors get
`Cache-Control: no-store`; POST answers are left alone (HTTP caches do not keep them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.graphql.persisted import load_trusted_documents

__all__ = ["OPERATION_MAX_AGE", "HttpCache"]

# Seconds a shared cache may keep the answer of each trusted operation (by operation name).
OPERATION_MAX_AGE: Final[Mapping[str, int]] = {
    "Feed": 30,
    "Search": 60,
    "Autocomplete": 300,
    "ArticlePage": 300,
    "EntityPage": 120,
    "SourcePage": 120,
}

_OPERATION_RE: Final = re.compile(
    r"^\s*(?:#[^\n]*\n\s*)*(?:query|mutation)\s+([_A-Za-z][_0-9A-Za-z]*)"
)


def _operation_name(text: str) -> str | None:
    match = _OPERATION_RE.match(text)
    return match.group(1) if match else None


class HttpCache:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        max_ages: Mapping[str, int] = OPERATION_MAX_AGE,
    ) -> None:
        self.app = app
        self.default_max_age = settings.cache_max_age
        self.max_ages = dict(max_ages)
        # The name of each trusted document's operation, by its sha256.
        self.trusted_names = {
            digest: _operation_name(document.text)
            for digest, document in load_trusted_documents().items()
        }

    def _max_age(self, scope: Scope) -> int:
        params = {
            key: values[0]
            for key, values in parse_qs(bytes(scope.get("query_string", b"")).decode()).items()
        }
        name = params.get("operationName")
        if name is None and (query := params.get("query")):
            name = _operation_name(query)
        if name is None and (extensions := params.get("extensions")):
            try:
                persisted = orjson.loads(extensions).get("persistedQuery") or {}
                name = self.trusted_names.get(str(persisted.get("sha256Hash", "")).lower())
            except (orjson.JSONDecodeError, AttributeError):
                name = None
        return self.max_ages.get(name or "", self.default_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if message.get("more_body", False):
                    return
                assert start is not None
                await self._answer(scope, start, b"".join(chunks), send)
                return
            await send(message)  # pragma: no cover - nothing else is sent over HTTP

        await self.app(scope, receive, capture)

    async def _answer(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        status = start["status"]
        content_type = dict(headers).get(b"content-type", b"")
        if status == 200 and content_type.startswith(b"application/json"):
            cacheable = False
            try:
                cacheable = not orjson.loads(body).get("errors")
            except (orjson.JSONDecodeError, AttributeError):
                cacheable = False
            if cacheable:
                etag = b'"' + hashlib.sha256(body).hexdigest().encode() + b'"'
                keyed = any(k == b"authorization" for k, _ in scope.get("headers", ()))
                age = self._max_age(scope)
                visibility = b"private" if keyed else b"public"
                headers += [
                    (b"etag", etag),
                    (b"cache-control", visibility + b", max-age=" + str(age).encode()),
                    (b"vary", b"Authorization"),
                ]
                if _matches(scope, etag):
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    await send({"type": "http.response.start", "status": 304, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
            else:
                headers.append((b"cache-control", b"no-store"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _matches(scope: Scope, etag: bytes) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"if-none-match":
            candidates = [c.strip().removeprefix(b"W/") for c in bytes(value).split(b",")]
            if b"*" in candidates or etag in candidates:
                return True
    return False
