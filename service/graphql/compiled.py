"""Compiled operations: the hottest trusted documents answered by one SQL statement each
(the article page: when its related stories are stored; see `_run_article_page`).

strawberry spends 7-22 ms of CPU per page request completing values field by field; the
same JSON built by PostgreSQL costs well under a millisecond of Python. For the operations
in `COMPILED` (the feed, the entity page, the article page), a pure-ASGI layer in front of
the GraphQL view recognises the document (by its sha256, sent as a persisted query or as
the exact text), checks the variables, costs and charges the request as `QueryCost` does,
and answers `{"data": <JSON from service.db.pages>, "extensions": {"cost": …}}`. The article
page's `relatedStories` come from the article's stored list (service.related.lists) in the
same statement; without a valid one they are ranked online as the general path ranks them
(`find_related`) and the page statement takes the ordered items and builds their JSON.

Anything it is not sure about goes to the general path unchanged: another document, an
operation name that does not match, variables of an unexpected shape or value (a bad
cursor, `first` out of range, a malformed id), a filter, a query over a limit or over
budget, a database error. The general path then gives the same answer, or the error with
its usual code. So errors always come from one place, and the fast path only ever answers
successes, which `tests/graphql/test_compiled.py` compares with the general resolvers.

Each compiled operation is pinned to the sha256 of the document it was written for: when
the document changes, the fast path for it turns off (and that test fails) until the SQL
is brought up to date.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
import strawberry
from graphql import parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.db import pages
from service.db.pool import Database
from service.errors import NewsgraphError
from service.graphql.limits import query_cost, within_limits
from service.graphql.pagination import decode_cursor, page_size
from service.graphql.persisted import TrustedDocument, load_trusted_documents, sha256_hex
from service.graphql.response_cache import ResponseCache
from service.graphql.types import related_query
from service.ids import decode_typed_id
from service.metrics import current_metrics
from service.observability import set_operation
from service.rate_limit import request_access
from service.related.find_related import find_related

__all__ = ["COMPILED", "CompiledOperation", "CompiledOperations", "compiled_documents"]

Args = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CompiledOperation:
    stem: str  # the file in schema/operations/
    name: str  # the operation's name
    sha256: str  # of the document text it was written for
    # The statement's arguments from the variables; None: leave it to the general path.
    prepare: Callable[[Mapping[str, Any], Settings], Args | None]
    run: Callable[[Database, Args], Awaitable[str]]
    statements: int = 1  # at most, per request


def _first(variables: Mapping[str, Any], settings: Settings, default: int) -> int | None:
    if "first" not in variables:
        return default  # the document's default value
    first = variables["first"]
    if first is not None and (not isinstance(first, int) or isinstance(first, bool)):
        return None
    try:
        return page_size(first, settings.default_page_size, settings.max_page_size)
    except NewsgraphError:
        return None


def _after(variables: Mapping[str, Any]) -> tuple[datetime, int] | bool | None:
    """The keyset position, None without one, False when not a valid newest-first cursor."""
    after = variables.get("after")
    if after is None:
        return None
    if not isinstance(after, str):
        return False
    try:
        time_, id_ = decode_cursor(after, "newest", (datetime, int))
    except NewsgraphError:
        return False
    assert isinstance(time_, datetime)
    assert isinstance(id_, int)
    return time_, id_


def _only(variables: Mapping[str, Any], names: frozenset[str]) -> bool:
    return isinstance(variables, dict) and variables.keys() <= names


def _prepare_feed(variables: Mapping[str, Any], settings: Settings) -> Args | None:
    if not _only(variables, frozenset({"first", "after", "languages"})):
        return None
    if variables.get("languages"):  # a filter: counted and estimated by the general path
        return None
    first, after = _first(variables, settings, 20), _after(variables)
    if first is None or after is False:
        return None
    return first, after


def _prepare_entity_page(variables: Mapping[str, Any], settings: Settings) -> Args | None:
    if not _only(variables, frozenset({"slug", "first", "after"})):
        return None
    slug = variables.get("slug")
    first, after = _first(variables, settings, 20), _after(variables)
    if not isinstance(slug, str) or first is None or after is False:
        return None
    return slug.strip().lower(), first, after


def _prepare_article_page(variables: Mapping[str, Any], settings: Settings) -> Args | None:
    if not _only(variables, frozenset({"id"})) or not isinstance(variables.get("id"), str):
        return None
    try:
        return (decode_typed_id(variables["id"], "Article"),)
    except NewsgraphError:
        return None


async def _run_feed(db: Database, args: Args) -> str:
    return await pages.feed_json(db, *args)


async def _run_entity_page(db: Database, args: Args) -> str:
    return await pages.entity_page_json(db, *args)


# The document's `relatedStories(first: 5)`: the general path's query for those arguments.
_ARTICLE_PAGE_RELATED: Final = related_query(5, 30, False, False, None, None)


async def _run_article_page(db: Database, args: Args) -> str:
    (article_id,) = args
    # One statement with the article's stored related list; without a valid one, the items
    # as the general path ranks them online (two statements), then the page with them.
    page = await pages.article_page_json(db, article_id, None)
    if page is not None:
        return page
    found = await find_related(db, [article_id], _ARTICLE_PAGE_RELATED)
    related = pages.related_json(found.get(article_id, []))
    page = await pages.article_page_json(db, article_id, related)
    assert page is not None  # with items given, the statement always answers
    return page


COMPILED: Final = (
    CompiledOperation(
        "feed",
        "Feed",
        "63a4f1aed66d20a4201f0beb4618c6c1921780aa9de200f24bdee0bdc996aec4",
        _prepare_feed,
        _run_feed,
    ),
    CompiledOperation(
        "entity_page",
        "EntityPage",
        "add9f6cf5b8a820dc9365ac4c6177ff3d65801db4a4dafd407bd37f6d5e83935",
        _prepare_entity_page,
        _run_entity_page,
    ),
    CompiledOperation(
        "article_page",
        "ArticlePage",
        "75a83527ba546ce4a7078d9be6938bd74bb63eb5d95c834f1ddb0f48142cf42c",
        _prepare_article_page,
        _run_article_page,
        # 1 with a valid stored related list; else the page, relatedStories' two, the page again
        statements=4,
    ),
)


def compiled_documents(
    trusted: Mapping[str, TrustedDocument] | None = None,
) -> dict[str, tuple[CompiledOperation, TrustedDocument]]:
    """The compiled operations whose document is trusted as they were written, by sha256."""
    trusted = load_trusted_documents() if trusted is None else trusted
    return {
        op.sha256: (op, trusted[op.sha256])
        for op in COMPILED
        if op.sha256 in trusted and trusted[op.sha256].name == op.stem
    }


@dataclass(slots=True)
class _Request:
    query: str | None
    variables: Any
    operation_name: str | None
    extensions: Any


def _parse_get(scope: Scope) -> _Request | None:
    params = {
        key: values[0]
        for key, values in parse_qs(bytes(scope.get("query_string", b"")).decode()).items()
    }
    try:
        variables = orjson.loads(params["variables"]) if "variables" in params else None
        extensions = orjson.loads(params["extensions"]) if "extensions" in params else None
    except orjson.JSONDecodeError:
        return None
    return _Request(params.get("query"), variables, params.get("operationName"), extensions)


def _parse_body(body: bytes) -> _Request | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.keys() <= {
        "query",
        "variables",
        "operationName",
        "extensions",
    }:
        return None
    return _Request(
        data.get("query"), data.get("variables"), data.get("operationName"), data.get("extensions")
    )


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


class CompiledOperations:
    """Pure-ASGI layer that answers compiled operations, else passes to the GraphQL view."""

    def __init__(
        self,
        app: ASGIApp,
        schema: strawberry.Schema,
        settings: Settings,
        cache: ResponseCache | None = None,
    ) -> None:
        self.app = app
        self.schema = schema._schema
        self.settings = settings
        self.cache = cache
        documents = compiled_documents() if settings.compiled_operations else {}
        # A document over the configured depth, alias or token limits is refused by the
        # general path: it must not be answered here either.
        self.documents = {
            digest: found
            for digest, found in documents.items()
            if within_limits(found[1].text, settings)
        }
        self._parsed = {digest: parse(doc.text) for digest, (_, doc) in self.documents.items()}
        self._costs: dict[tuple[str, bool, object], tuple[int, int]] = {}

    def _cost(self, digest: str, variables: Mapping[str, Any]) -> tuple[int, int] | None:
        """(cost, nodes), which depend on `first` only; remembered per value."""
        key = (digest, "first" in variables, variables.get("first"))
        if (known := self._costs.get(key)) is not None:
            return known
        cost = query_cost(
            self.schema,
            self._parsed[digest],
            None,
            {"first": variables["first"]} if "first" in variables else {},
            default_page_size=self.settings.default_page_size,
            max_page_size=self.settings.max_page_size,
        )
        if cost is None:
            return None
        if len(self._costs) < 1000:  # first is 1..100 here: a few hundred keys at most
            self._costs[key] = (cost.cost, cost.nodes)
        return cost.cost, cost.nodes

    def _match(self, request: _Request) -> tuple[str, CompiledOperation] | None:
        persisted = request.extensions.get("persistedQuery") if request.extensions else None
        if isinstance(request.extensions, dict) and request.extensions.keys() - {"persistedQuery"}:
            return None
        if persisted is not None:
            if not isinstance(persisted, dict) or persisted.get("version") != 1:
                return None
            digest = str(persisted.get("sha256Hash", "")).lower()
            if request.query is not None and (
                not isinstance(request.query, str) or sha256_hex(request.query) != digest
            ):
                return None
        elif isinstance(request.query, str):
            digest = sha256_hex(request.query)
        else:
            return None
        found = self.documents.get(digest)
        if found is None:
            return None
        op = found[0]
        if request.operation_name not in (None, op.name):
            return None
        return digest, op

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.documents or scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            request = _parse_get(scope)
        else:
            if not _header(scope, b"content-type").startswith(b"application/json"):
                await self.app(scope, receive, send)
                return
            body, receive = await _read_body(receive)
            request = _parse_body(body)
        if request is None or not await self._answer(scope, request, send):
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, request: _Request, send: Send) -> bool:
        """Answer the request here; False (nothing sent) when the general path must."""
        started = time.perf_counter()
        matched = self._match(request)
        if matched is None:
            return False
        digest, op = matched
        variables = request.variables if request.variables is not None else {}
        args = op.prepare(variables, self.settings) if isinstance(variables, dict) else None
        if args is None:
            return False
        cost = self._cost(digest, variables)
        if cost is None:
            return False
        points, nodes = cost
        if nodes > self.settings.max_query_nodes or points > self.settings.max_query_cost:
            return False
        report: dict[str, int | None] = {
            "requested": points, "remaining": None, "limit": None, "resetSeconds": None,
        }  # fmt: skip
        access = request_access()
        if access is not None and access.limits is not None:
            # A request over budget spends nothing; the general path then refuses it with
            # its code and headers.
            budget = await access.limits.charge(access.principal, access.client, points)
            if budget is not None and not budget.allowed:
                return False
            access.budget, access.charged = budget, True
            if budget is not None:
                report["limit"] = budget.limit
                if not access.cacheable:
                    report.update(remaining=budget.remaining, resetSeconds=budget.reset_seconds)
        db: Database = scope["state"]["db"]
        key = (digest, args)
        data = self.cache.get(key) if self.cache is not None else None
        if data is None:
            generation = self.cache.generation if self.cache is not None else 0
            try:
                data = (await op.run(db, args)).encode()
            except NewsgraphError:
                return False
            if self.cache is not None:
                self.cache.put(key, data, generation)
        body = b'{"data":' + data + b',"extensions":{"cost":' + orjson.dumps(report) + b"}}"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        set_operation(op.name)
        if (metrics := current_metrics()) is not None:
            metrics.observe_operation(op.name, "query", "ok", time.perf_counter() - started, ())
        return True


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it on again to the next app."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
