"""REST reads for partners that do not speak GraphQL: articles, entities, sources, changes.

Over the same db layer as GraphQL, answering JSON with GraphQL's field names (`canonicalUrl`,
`publishedAt`, …) and its ids and cursors (a cursor from one face works in the other). Lists
are `{"edges": [{"cursor", "node"}], "pageInfo": {"hasNextPage", "endCursor"}}`, page size
`limit` 1–100 (default 20), continued with `cursor`. Each answer costs a fixed number of
statements, whatever the page size (nested sources and entities are fetched per page).

Answers are cacheable like GraphQL GETs: a strong `ETag` (sha256 of the body), `Cache-Control`
(`public` without a key, `private` with one) and `Vary: Authorization`; `If-None-Match` with
the current ETag answers 304. ETags are content hashes computed on every request, so after a
takedown a revalidation never gets a 304 for the removed content. Errors are
`{"error": {"code", "message"}}`: 400 (BAD_INPUT, BAD_CURSOR, LIMIT_EXCEEDED), 404 (NOT_FOUND),
410 (REMOVED, with the tombstone), 503 (SERVICE_UNAVAILABLE), never cached.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from service.config import Settings
from service.cursors import decode_cursor, encode_cursor, page_size
from service.db import changes, entities, sources
from service.db.articles import (
    ArticleFilter,
    ArticleOrder,
    ArticlePageQuery,
    Scope,
    fetch_article_by_url,
    fetch_article_pages,
    fetch_articles_by_ids,
)
from service.db.pool import Database
from service.db.records import ArticleRecord, TombstoneRecord
from service.db.takedowns import resolve_article_urls
from service.errors import BadInput, LimitExceeded, NewsgraphError
from service.ids import decode_id, decode_typed_id
from service.ingest.normalize import canonicalize_url, parse_published_at
from service.ingest.pipeline import ENTITY_KINDS
from service.related.find_related import RelatedQuery
from service.related.lists import related_stories
from service.rest.shapes import (
    articles_json,
    connection,
    entity_json,
    source_json,
    time_json,
    tombstone_json,
)

__all__ = [
    "ROUTES",
    "article",
    "article_list",
    "change_feed",
    "entity_list",
    "related",
    "source_list",
]

log = logging.getLogger("newsgraph.rest.reads")

# Seconds a cache may keep each answer (as OPERATION_MAX_AGE does for GraphQL operations).
ARTICLE_MAX_AGE: Final = 300
CATALOGUE_MAX_AGE: Final = 300
CHANGES_MAX_AGE: Final = 0
MAX_FILTER_VALUES: Final = 100
MAX_SEARCH_LENGTH: Final = 100
RELATED_DEFAULT: Final = 10
RELATED_WINDOW_DAYS: Final = 30
MAX_RELATED: Final = 50  # as Article.relatedStories
MAX_WINDOW_DAYS: Final = 36500
CHANGE_CURSOR: Final = "change"  # the same kind as Query.changes' cursors


class NotFound(NewsgraphError):
    code = "NOT_FOUND"
    http_status = 404


class Gone(NewsgraphError):
    """The article was taken down; the answer carries its tombstone."""

    code = "REMOVED"
    http_status = 410

    def __init__(self, message: str, tombstone: TombstoneRecord) -> None:
        super().__init__(message)
        self.tombstone = tombstone


# --- Request parsing ---------------------------------------------------------------------


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadInput(f"give `{name}` at most once")
    if not values or not values[0].strip():
        return None
    return values[0].strip()


def _many(request: Request, name: str) -> list[str]:
    values = [v.strip() for v in request.query_params.getlist(name) if v.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"`{name}` takes at most {MAX_FILTER_VALUES} values")
    return values


def _limit(request: Request, default: int | None = None) -> int:
    settings: Settings = request.state.settings
    text = _one(request, "limit")
    value = None
    if text is not None:
        try:
            value = int(text)
        except ValueError:
            raise BadInput(f"`limit` must be a whole number, got {text!r}") from None
    return page_size(
        value,
        default or settings.default_page_size,
        settings.max_page_size,
        name="limit",
        after="cursor",
    )


def _date(request: Request, name: str) -> datetime | None:
    text = _one(request, name)
    if text is None:
        return None
    try:
        return parse_published_at(text)
    except BadInput as exc:
        raise BadInput(
            f"`{name}` is {exc.message} (e.g. 2026-05-01T00:00:00Z or 2026-05-01)"
        ) from None


def _cursor(request: Request, kind: str, types: tuple[type, ...]) -> tuple[object, ...] | None:
    text = _one(request, "cursor")
    return decode_cursor(text, kind, types, name="cursor") if text else None


def _search(request: Request) -> str | None:
    text = _one(request, "search")
    if text is not None and len(text) > MAX_SEARCH_LENGTH:
        raise LimitExceeded(f"`search` is limited to {MAX_SEARCH_LENGTH} characters")
    return text


# --- Answers -----------------------------------------------------------------------------


def _json_response(request: Request, payload: object, max_age: int) -> Response:
    body = orjson.dumps(payload)
    etag = '"' + hashlib.sha256(body).hexdigest() + '"'
    keyed = "authorization" in request.headers
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'private' if keyed else 'public'}, max-age={max_age}",
        "Vary": "Authorization",
    }
    candidates = [
        c.strip().removeprefix("W/") for c in request.headers.get("if-none-match", "").split(",")
    ]
    if etag in candidates or "*" in candidates:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _error(exc: NewsgraphError) -> Response:
    payload: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
    if isinstance(exc, Gone):
        payload["tombstone"] = tombstone_json(exc.tombstone)
    return Response(
        orjson.dumps(payload),
        status_code=exc.http_status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(handler: Handler) -> Handler:
    """Client mistakes as JSON errors; anything else masked, with the request id, and logged."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except NewsgraphError as exc:
            return _error(exc)
        except Exception:
            request_id = getattr(request.state, "request_id", None)
            log.exception("unexpected error in GET %s (request %s)", request.url.path, request_id)
            return Response(
                orjson.dumps(
                    {
                        "error": {
                            "code": "INTERNAL_SERVER_ERROR",
                            "message": f"Internal server error (request id {request_id}).",
                        }
                    }
                ),
                status_code=500,
                media_type="application/json",
                headers={"Cache-Control": "no-store"},
            )

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _gone_or_missing(db: Database, article_id: int | None, what: str) -> NewsgraphError:
    if article_id is not None:
        tombstone = (await changes.fetch_tombstones(db, [article_id])).get(article_id)
        if tombstone is not None:
            return Gone(f"{what} was taken down: {tombstone.reason}", tombstone)
    return NotFound(f"no article has {what}")


async def _article_by_path(request: Request) -> ArticleRecord:
    db: Database = request.state.db
    value = request.path_params["id"]
    key = decode_typed_id(value, "Article")
    record = (await fetch_articles_by_ids(db, [key])).get(key)
    if record is None:
        raise await _gone_or_missing(db, key, f"the id {value}")
    return record


@_endpoint
async def article(request: Request) -> Response:
    """`GET /v1/articles/{id}`: one article, with its body."""
    record = await _article_by_path(request)
    [item] = await articles_json(request.state.db, [record], body=True)
    return _json_response(request, item, ARTICLE_MAX_AGE)


async def _by_url(request: Request, url: str) -> Response:
    db: Database = request.state.db
    canonical = canonicalize_url(url)
    record = await fetch_article_by_url(db, canonical)
    if record is None:
        owner = (await resolve_article_urls(db, [canonical])).get(canonical)
        raise await _gone_or_missing(db, owner, f"the URL {canonical}")
    [item] = await articles_json(db, [record], body=True)
    return _json_response(request, item, ARTICLE_MAX_AGE)


async def _source_ids(db: Database, values: list[str]) -> tuple[int, ...] | None:
    """Source ids for domains or global ids; None when one of them is unknown."""
    ids = []
    for value in values:
        if "." in value:
            record = await sources.fetch_source_by_domain(db, value.lower().removeprefix("www."))
            if record is None:
                return None
            ids.append(record.id)
        else:
            ids.append(decode_typed_id(value, "Source"))
    return tuple(sorted(set(ids)))


async def _entity_ids(db: Database, values: list[str]) -> tuple[int, ...] | None:
    """Entity ids for slugs or global ids; None when one of them is unknown."""
    ids = []
    for value in values:
        try:
            type_name, key = decode_id(value)
        except BadInput:
            type_name, key = "", 0
        if type_name == "Entity":
            ids.append(key)
            continue
        record = await entities.fetch_entity_by_slug(db, value.lower())
        if record is None:
            return None
        ids.append(record.id)
    return tuple(sorted(set(ids)))


@_endpoint
async def article_list(request: Request) -> Response:
    """`GET /v1/articles?url=…` (one article) or a filtered, cursor-paged list."""
    db: Database = request.state.db
    url = _one(request, "url")
    if url is not None:
        return await _by_url(request, url)
    order_name = (_one(request, "order") or "newest").upper()
    if order_name not in ("NEWEST", "OLDEST"):
        raise BadInput("`order` must be newest or oldest")
    order = ArticleOrder[order_name]
    kind = order.value.lower()
    size = _limit(request)
    position = _cursor(request, kind, (datetime, int))
    since, until = _date(request, "since"), _date(request, "until")
    languages = tuple(sorted({v.lower() for v in _many(request, "language")}))
    sections = tuple(sorted({v.lower() for v in _many(request, "section")}))
    source_ids = await _source_ids(db, _many(request, "source"))
    entity_ids = await _entity_ids(db, _many(request, "entity"))
    after = _one(request, "cursor")
    max_age = request.state.settings.cache_max_age
    if source_ids is None or entity_ids is None:  # an unknown source or entity: nothing matches
        return _json_response(request, connection([], False, after), max_age)
    query = ArticlePageQuery(
        filter=ArticleFilter(
            source_ids=source_ids,
            entity_ids=entity_ids,
            languages=languages,
            sections=sections,
            published_after=since,
            published_before=until,
        ),
        order=order,
        after=position,  # type: ignore[arg-type]
        limit=size + 1,
    )
    rows = [record for record, _ in (await fetch_article_pages(db, query, Scope.ALL)).get(0, [])]
    nodes = await articles_json(db, rows[:size])
    edges = [
        {"cursor": encode_cursor(kind, (r.published_at, r.id)), "node": node}
        for r, node in zip(rows[:size], nodes, strict=True)
    ]
    return _json_response(request, connection(edges, len(rows) > size, after), max_age)


# The one call site of related articles. Issue 8 ships this stand-in (recent articles sharing
# the article's most salient entities, through the existing entity-feed query) until
# `service/related/` (relatedStories) lands; then point `related_articles` at it.
def _window_days(request: Request) -> int:
    text = _one(request, "windowDays")
    if text is None:
        return RELATED_WINDOW_DAYS
    try:
        value = int(text)
    except ValueError:
        raise BadInput(f"`windowDays` must be a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_WINDOW_DAYS:
        raise BadInput(f"`windowDays` must be from 0 to {MAX_WINDOW_DAYS}, got {value}")
    return value


@_endpoint
async def related(request: Request) -> Response:
    """`GET /v1/articles/{id}/related?limit=&windowDays=`: as `Article.relatedStories`."""
    record = await _article_by_path(request)
    text = _one(request, "limit")
    try:
        first = int(text) if text is not None else RELATED_DEFAULT
    except ValueError:
        raise BadInput(f"`limit` must be a whole number, got {text!r}") from None
    if not 1 <= first <= MAX_RELATED:
        raise LimitExceeded(f"`limit` must be from 1 to {MAX_RELATED}, got {first}")
    db: Database = request.state.db
    query = RelatedQuery(first=first, window_days=_window_days(request))
    related = await related_stories(db, [record.id], query)
    items = related.items.get(record.id, [])
    found = related.articles  # stored or ranked online, the listed articles come along
    shown = [item for item in items if item.article_id in found]
    named = await entities.fetch_entities_by_ids(
        db, sorted({e for item in shown for e in item.shared_entities})
    )
    bodies = await articles_json(db, [found[item.article_id] for item in shown])
    payload = [
        {
            "article": body,
            "score": item.score,
            "reasons": {
                "sharedEntities": [
                    entity_json(named[e]) for e in item.shared_entities if e in named
                ],
                "textSimilarity": item.text_similarity,
                "timeGapHours": item.time_gap_hours,
                "relation": item.relation,
            },
        }
        for item, body in zip(shown, bodies, strict=True)
    ]
    return _json_response(request, {"relatedStories": payload}, ARTICLE_MAX_AGE)


@_endpoint
async def entity_list(request: Request) -> Response:
    """`GET /v1/entities?search=&kind=&cursor=&limit=`: autocomplete, or most mentioned."""
    text = _search(request)
    kind = _one(request, "kind")
    if kind is not None and kind.upper() not in ENTITY_KINDS:
        raise BadInput(f"`kind` must be one of {', '.join(sorted(ENTITY_KINDS))}")
    size = _limit(request)
    cursor_kind, types = ("match", (int, int, int)) if text else ("popular", (int, int))
    position = _cursor(request, cursor_kind, types)
    rows = await entities.list_entities(
        request.state.db,
        search=text,
        kind=kind.upper() if kind else None,
        after=position,  # type: ignore[arg-type]
        limit=size + 1,
    )
    edges = [
        {"cursor": encode_cursor(cursor_kind, key), "node": entity_json(record)}
        for record, key in rows[:size]
    ]
    payload = connection(edges, len(rows) > size, _one(request, "cursor"))
    return _json_response(request, payload, CATALOGUE_MAX_AGE)


@_endpoint
async def source_list(request: Request) -> Response:
    """`GET /v1/sources?search=&cursor=&limit=`: sources by name."""
    text = _search(request)
    size = _limit(request)
    position = _cursor(request, "name", (str, int))
    records = await sources.list_sources(
        request.state.db,
        search=text,
        after=position,  # type: ignore[arg-type]
        limit=size + 1,
    )
    edges = [
        {"cursor": encode_cursor("name", (r.name, r.id)), "node": source_json(r)}
        for r in records[:size]
    ]
    payload = connection(edges, len(records) > size, _one(request, "cursor"))
    return _json_response(request, payload, CATALOGUE_MAX_AGE)


@_endpoint
async def change_feed(request: Request) -> Response:
    """`GET /v1/changes?since=&cursor=&limit=`: the change feed (see `Query.changes`)."""
    db: Database = request.state.db
    size = _limit(request)
    position = _cursor(request, CHANGE_CURSOR, (int,))
    since = _date(request, "since")
    rows = await changes.fetch_changes(
        db,
        after=position[0] if position else None,  # type: ignore[arg-type]
        since=since,
        limit=size + 1,
    )
    page = rows[:size]
    present = [r.article for r in page if r.article is not None]
    by_id = dict(
        zip([a.id for a in present], await articles_json(db, present, body=True), strict=True)
    )
    edges = [
        {
            "cursor": encode_cursor(CHANGE_CURSOR, (r.seq,)),
            "node": {
                "seq": r.seq,
                "kind": r.kind,
                "changedAt": time_json(r.changed_at),
                "article": by_id.get(r.article_id) if r.article is not None else None,
                "tombstone": tombstone_json(r.tombstone) if r.tombstone else None,
            },
        }
        for r in page
    ]
    payload = connection(edges, len(rows) > size, _one(request, "cursor"))
    # Revalidated on every poll: a cached tail would hide new changes (and takedowns).
    return _json_response(request, payload, CHANGES_MAX_AGE)


# (path, handler) for service.app: all GET.
ROUTES: Final = (
    ("/v1/articles", article_list),
    ("/v1/articles/{id}", article),
    ("/v1/articles/{id}/related", related),
    ("/v1/entities", entity_list),
    ("/v1/sources", source_list),
    ("/v1/changes", change_feed),
)
