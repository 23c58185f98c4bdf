"""Whole pages from one statement each, for the hot operations.

Each function answers the `data` of one persisted operation of `schema/operations/` (the
feed, the entity page, the article page) as JSON text, exactly as the general GraphQL path
would (global ids, cursors and dates as `service.ids`, `service.cursors` and strawberry write
them). `service.graphql.compiled` decides when a request may take this path; a test compares
both paths operation by operation.

The feed and the entity page fetch their rows (nested arrays of records) in one statement and
build the JSON in Python; the article page's JSON is built by PostgreSQL (`json`, not `jsonb`:
jsonb would reorder the keys). Its related stories come from the article's stored list when
it is valid (service.related.lists), in the same statement; otherwise they are ranked in
Python first (as the general path does) and the statement takes them, in order, as one
`json` argument (see `related_json`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from service.cursors import encode_cursor
from service.db.entities import CO_MENTION_WINDOW
from service.db.pool import Database
from service.ids import encode_id
from service.related.find_related import RelatedItem

__all__ = ["article_page_json", "entity_page_json", "feed_json", "related_json"]


def _gid(type_name: str, column: str) -> str:
    # base64url without padding, as service.ids.encode_id. A type name, ':' and digits are
    # ASCII without '>', '?' or '~', and base64 of such bytes never holds '+' or '/' (a
    # sextet of 62 or 63 needs a byte >= 0xF8 to start a group, or one ending in 0b111110 or
    # 0b111111 in a group's last place: '>', '?', '~', DEL), so the alphabet needs no
    # translate() (~1.3 µs a call, most of an id's price); short, so never wrapped.
    # `tests/graphql/test_compiled.py` checks it against service.ids.
    return f"rtrim(encode(convert_to('{type_name}:' || {column}::text, 'UTF8'), 'base64'), '=')"


def _iso(column: str) -> str:
    """The JSON string of `datetime.isoformat()` of a UTC time (microseconds only when there
    are some). PostgreSQL writes a timestamptz in JSON the same way in a UTC session
    (SESSION_SETTINGS), except that it drops a fraction's trailing zeros, so times with a
    fraction take the slower to_char path (3x the cost)."""
    return (
        f"CASE WHEN {column} = date_trunc('second', {column}) THEN to_json({column}) ELSE "
        f"to_json(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
        f"|| '+00:00') END"
    )


def _salience(column: str) -> str:
    # round(salience, 4) in float8 arithmetic, as service.db.entities reads it: a real times
    # 10,000 is exact in float8, and k / 10,000 prints as the short decimal (numeric rounding
    # cost ~2 µs a value).
    return f"round({column}::float8 * 10000) / 10000"


def _entity_json(alias: str) -> str:
    return (
        f"json_build_object('id', {_gid('Entity', f'{alias}.id')}, 'name', {alias}.name, "
        f"'slug', {alias}.slug, 'kind', {alias}.kind)"
    )


# --- the feed and the entity page: rows from one statement, JSON from Python ----------------
#
# Building these pages' JSON in PostgreSQL (json_build_object ~2.3 µs an object, a global id
# ~0.8 µs, for ~260 objects a page) cost PostgreSQL about twice what the rows cost; Python
# builds the same objects for less (measured on the 200k bench database, one page of 20: 1.2
# ms of PostgreSQL CPU for the JSON statement against 0.55 ms for the rows; +0.3 ms of
# Python). With two processes PostgreSQL is the bottleneck, so these two pages fetch rows
# (nested arrays of records, decoded by asyncpg in C) and assemble the JSON here, with the
# functions the general path uses for ids, cursors and dates.


def _top_entity_rows(article: str, first: int) -> str:
    # Article.entities(first: N) { salience entity { id name slug kind } }, as the loader orders.
    return f"""ARRAY(
        SELECT ROW(x.entity_id, x.salience, e.name, e.slug, e.kind)
        FROM (SELECT l.entity_id, {_salience("l.salience")} AS salience
              FROM article_entities l WHERE l.article_id = {article}
              ORDER BY 2 DESC, l.entity_id LIMIT {first}) x
        JOIN entities e ON e.id = x.entity_id
        ORDER BY x.salience DESC, x.entity_id)"""


def _feed_sql(after: bool) -> str:
    keyset = "WHERE (a.published_at, a.id) < ($2::timestamptz, $3::bigint)" if after else ""
    # Every article has a source: the sources' maintained counters sum to the total.
    return f"""
SELECT (SELECT coalesce(sum(c.article_count), 0)::bigint FROM sources c) AS total,
       ARRAY(
    SELECT ROW(a.id, a.title, a.summary, a.url, a.published_at, a.language,
               s.id, s.name, s.domain, {_top_entity_rows("a.id", 5)})
    FROM (SELECT a.id, a.title, a.summary, a.url, a.published_at, a.language, a.source_id
          FROM articles a {keyset}
          ORDER BY a.published_at DESC, a.id DESC LIMIT $1 + 1) a
    JOIN sources s ON s.id = a.source_id
    ORDER BY a.published_at DESC, a.id DESC) AS articles"""


# Feed with `first`, `after` and no filter (see service.graphql.compiled for the variables).
SELECT_FEED: Final = _feed_sql(after=False)
SELECT_FEED_AFTER: Final = _feed_sql(after=True)


def _entity_page_sql(after: bool) -> str:
    keyset = "AND (l.published_at, l.article_id) < ($3::timestamptz, $4::bigint)" if after else ""
    return f"""
WITH ent AS (
    -- A merged entity's old slug resolves to the entity it was merged into.
    SELECT e.* FROM entities e
    WHERE e.slug = $2
       OR e.id = (SELECT r.entity_id FROM entity_redirects r WHERE r.old_slug = $2)
    ORDER BY e.slug = $2 DESC
    LIMIT 1
)
SELECT ent.id, ent.name, ent.slug, ent.kind, ent.wikidata_id, ent.description,
       ent.article_count,
       ARRAY(SELECT al.alias FROM entity_aliases al WHERE al.entity_id = ent.id
             ORDER BY al.alias) AS aliases,
       ARRAY(SELECT ROW(co.count, oe.id, oe.name, oe.slug, oe.kind)
             FROM (SELECT o.entity_id AS other_id, count(*)::int AS count
                   FROM (SELECT l.article_id FROM article_entities l WHERE l.entity_id = ent.id
                         ORDER BY l.published_at DESC, l.article_id DESC
                         LIMIT {CO_MENTION_WINDOW}) recent
                   JOIN article_entities o
                     ON o.article_id = recent.article_id AND o.entity_id <> ent.id
                   GROUP BY o.entity_id
                   ORDER BY count(*) DESC, o.entity_id
                   LIMIT 10) co
             JOIN entities oe ON oe.id = co.other_id
             ORDER BY co.count DESC, co.other_id) AS co_mentioned,
       ARRAY(SELECT ROW(a.id, a.title, a.published_at, s.id, s.name, s.domain,
                        {_top_entity_rows("a.id", 5)})
             FROM (SELECT l.article_id, l.published_at FROM article_entities l
                   WHERE l.entity_id = ent.id {keyset}
                   ORDER BY l.published_at DESC, l.article_id DESC LIMIT $1 + 1) l
             JOIN articles a ON a.id = l.article_id
             JOIN sources s ON s.id = a.source_id
             ORDER BY l.published_at DESC, l.article_id DESC) AS articles
FROM ent"""


SELECT_ENTITY_PAGE: Final = _entity_page_sql(after=False)
SELECT_ENTITY_PAGE_AFTER: Final = _entity_page_sql(after=True)


@functools.lru_cache(maxsize=65536)
def _id(type_name: str, key: int) -> str:
    # Entities and sources recur from page to page.
    return encode_id(type_name, key)


def _top(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"salience": salience, "entity": {"id": _id("Entity", eid), "name": name, "slug": slug,
                                          "kind": kind}}
        for eid, salience, name, slug, kind in rows
    ]  # fmt: skip


async def feed_json(db: Database, first: int, after: tuple[datetime, int] | None) -> str:
    """`data` of the Feed operation without a filter."""
    if after is None:
        row = await db.fetchrow_planned(SELECT_FEED, first)
    else:
        row = await db.fetchrow_planned(SELECT_FEED_AFTER, first, *after)
    assert row is not None
    # (id, title, summary, url, published_at, language, source id, name, domain, entities)
    edges = [
        {
            "cursor": encode_cursor("newest", [r[4], r[0]]),
            "node": {
                "id": encode_id("Article", r[0]), "title": r[1], "summary": r[2], "url": r[3],
                "publishedAt": r[4].isoformat(), "language": r[5],
                "source": {"id": _id("Source", r[6]), "name": r[7], "domain": r[8]},
                "entities": _top(r[9]),
            },
        }
        for r in row["articles"][:first]
    ]  # fmt: skip
    page = {
        "totalCount": row["total"],
        "totalCountIsExact": True,
        "edges": edges,
        "pageInfo": {
            "hasNextPage": len(row["articles"]) > first,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }
    return orjson.dumps({"articles": page}).decode()


async def entity_page_json(
    db: Database, slug: str, first: int, after: tuple[datetime, int] | None
) -> str:
    """`data` of the EntityPage operation."""
    if after is None:
        row = await db.fetchrow_planned(SELECT_ENTITY_PAGE, first, slug)
    else:
        row = await db.fetchrow_planned(SELECT_ENTITY_PAGE_AFTER, first, slug, *after)
    if row is None:
        return '{"entity":null}'
    # (id, title, published_at, source id, name, domain, entities)
    articles = row["articles"]
    edges = [
        {
            "cursor": encode_cursor("newest", [r[2], r[0]]),
            "node": {
                "id": encode_id("Article", r[0]), "title": r[1], "publishedAt": r[2].isoformat(),
                "source": {"id": _id("Source", r[3]), "name": r[4], "domain": r[5]},
                "entities": _top(r[6]),
            },
        }
        for r in articles[:first]
    ]  # fmt: skip
    entity = {
        "id": _id("Entity", row["id"]), "name": row["name"], "slug": row["slug"],
        "kind": row["kind"], "aliases": list(row["aliases"]), "wikidataId": row["wikidata_id"],
        "description": row["description"], "articleCount": row["article_count"],
        "coMentioned": [
            {"count": count, "entity": {"id": _id("Entity", eid), "name": name, "slug": slug_,
                                        "kind": kind}}
            for count, eid, name, slug_, kind in row["co_mentioned"]
        ],
        "articles": {
            "totalCount": row["article_count"],
            "edges": edges,
            "pageInfo": {
                "hasNextPage": len(articles) > first,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        },
    }  # fmt: skip
    return orjson.dumps({"entity": entity}).decode()


# The document asks `relatedStories(first: 5)` with default arguments.
ARTICLE_PAGE_RELATED: Final = 5

# $2: the related items ranked online (`related_json`), or NULL for the article's stored
# list, when valid (see service.related.lists); without one the statement answers NULL and
# the caller ranks online.
SELECT_ARTICLE_PAGE_JSON: Final = f"""
WITH rel AS (
    SELECT coalesce($2::text::json, (
        SELECT l.items FROM related_lists l
        WHERE l.article_id = $1
          AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = $1))) AS items
)
SELECT CASE WHEN rel.items IS NOT NULL THEN json_build_object('article', (SELECT json_build_object(
    'id', {_gid("Article", "a.id")}, 'title', a.title, 'summary', a.summary, 'body', a.body,
    'url', a.url, 'canonicalUrl', a.canonical_url, 'publishedAt', {_iso("a.published_at")},
    'publishedAtEstimated', a.published_at_estimated, 'updatedAt', {_iso("a.updated_at")},
    'language', a.language, 'section', a.section, 'tags', to_json(a.tags),
    'authors', coalesce((SELECT json_agg(json_build_object('name', u.name) ORDER BY u.i)
                         FROM unnest(a.authors) WITH ORDINALITY u(name, i)), '[]'::json),
    'image', CASE WHEN coalesce(a.image_url, '') <> '' THEN json_build_object(
        'url', a.image_url, 'credit', a.image_credit, 'caption', a.image_caption,
        'alt', a.image_alt, 'width', a.image_width, 'height', a.image_height) END,
    'source', (SELECT json_build_object('id', {_gid("Source", "s.id")}, 'name', s.name,
                                        'domain', s.domain, 'country', s.country)
               FROM sources s WHERE s.id = a.source_id),
    'entities', coalesce((
        SELECT json_agg(json_build_object(
            'salience', x.salience, 'mentionCount', x.mention_count,
            'entity', json_build_object(
                'id', {_gid("Entity", "e.id")}, 'name', e.name, 'slug', e.slug, 'kind', e.kind,
                'articles', json_build_object('edges', coalesce((
                    SELECT json_agg(json_build_object('node', json_build_object(
                        'id', {_gid("Article", "b.id")}, 'title', b.title,
                        'publishedAt', {_iso("b.published_at")},
                        'source', json_build_object('name', bs.name)))
                        ORDER BY r.published_at DESC, r.article_id DESC)
                    FROM (SELECT l.article_id, l.published_at FROM article_entities l
                          WHERE l.entity_id = e.id
                          ORDER BY l.published_at DESC, l.article_id DESC LIMIT 5) r
                    JOIN articles b ON b.id = r.article_id
                    JOIN sources bs ON bs.id = b.source_id), '[]'::json))))
            ORDER BY x.salience DESC, x.entity_id)
        FROM (SELECT l.entity_id, {_salience("l.salience")} AS salience,
                     l.mention_count
              FROM article_entities l WHERE l.article_id = a.id) x
        JOIN entities e ON e.id = x.entity_id), '[]'::json),
    'relatedStories', coalesce((
        SELECT json_agg(json_build_object(
            'score', r.item -> 1,
            'article', json_build_object(
                'id', {_gid("Article", "c.id")}, 'title', c.title,
                'publishedAt', {_iso("c.published_at")},
                'source', json_build_object('name', cs.name)),
            'reasons', json_build_object(
                'relation', r.item ->> 4, 'textSimilarity', r.item -> 2,
                'timeGapHours', r.item -> 3,
                'sharedEntities', coalesce((
                    SELECT json_agg(json_build_object('name', se.name) ORDER BY k.i)
                    FROM json_array_elements_text(r.item -> 5) WITH ORDINALITY k(id, i)
                    -- A merged entity's old id resolves to the entity it was merged into.
                    JOIN entities se ON se.id = coalesce(
                        (SELECT rd.entity_id FROM entity_redirects rd
                         WHERE rd.old_id = k.id::bigint), k.id::bigint)), '[]'::json)))
            ORDER BY r.i)
        FROM json_array_elements(rel.items) WITH ORDINALITY r(item, i)
        JOIN articles c ON c.id = (r.item ->> 0)::bigint
        JOIN sources cs ON cs.id = c.source_id
        WHERE r.i <= {ARTICLE_PAGE_RELATED}), '[]'::json)
) FROM articles a WHERE a.id = $1))::text END FROM rel"""


def related_json(items: Sequence[RelatedItem]) -> str:
    """The article page's related items, in order, for `SELECT_ARTICLE_PAGE_JSON`: each
    `[article id, score, text similarity, time gap, relation, [shared entity ids]]`, its
    numbers written as the general path writes them (`json.dumps`: the shortest repr), so
    PostgreSQL copies them into the page as they are (a `json` value keeps its text)."""
    rows = [
        [i.article_id, i.score, i.text_similarity, i.time_gap_hours, i.relation,
         list(i.shared_entities)]
        for i in items
    ]  # fmt: skip
    return json.dumps(rows, separators=(",", ":"))


async def article_page_json(db: Database, article_id: int, related: str | None) -> str | None:
    """`data` of the ArticlePage operation; `related` from `related_json`, or None for the
    stored list (then None when the article has no valid one)."""
    page = await db.fetchval_planned(SELECT_ARTICLE_PAGE_JSON, article_id, related)
    return None if page is None else str(page)
