"""Whole pages from one statement each, for the hot operations.

Each function answers the `data` of one persisted operation of `schema/operations/` (the
feed, the entity page, the article page) as JSON text, exactly as the general GraphQL path
would (global ids, cursors and dates as `service.ids`, `service.cursors` and strawberry write
them). `service.graphql.compiled` decides when a request may take this path; a test compares
both paths operation by operation.

Each page's statement returns its rows (nested arrays of records, which asyncpg decodes in
C), and Python builds the JSON. Building it in PostgreSQL instead (json_build_object ~2.3 µs
an object, a global id ~0.8 µs, ~260 objects in a page of 20) cost PostgreSQL about twice
what the rows cost, and with two processes PostgreSQL is the bottleneck (measured on the 200k
bench database, a feed page of 20: 1.2 ms of PostgreSQL CPU for the JSON statement against
0.55 ms for the rows, for ~0.3 ms more of Python).

The article page's related stories come from the article's stored list when it is valid
(service.related.lists), in the same statement; otherwise they are ranked in Python first (as
the general path does) and the statement takes them, in order, as one `json` argument (see
`related_json`).
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


def _salience(column: str) -> str:
    # round(salience, 4) in float8 arithmetic, as service.db.entities reads it: a real times
    # 10,000 is exact in float8, and k / 10,000 prints as the short decimal (numeric rounding
    # cost ~2 µs a value).
    return f"round({column}::float8 * 10000) / 10000"


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


def _page_info(edges: list[dict[str, Any]], fetched: int, first: int) -> dict[str, Any]:
    # Up to first + 1 rows are fetched: one more means another page.
    return {"hasNextPage": fetched > first, "endCursor": edges[-1]["cursor"] if edges else None}


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
        "pageInfo": _page_info(edges, len(row["articles"]), first),
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
            "pageInfo": _page_info(edges, len(articles), first),
        },
    }  # fmt: skip
    return orjson.dumps({"entity": entity}).decode()


# The document asks `relatedStories(first: 5)` with default arguments.
ARTICLE_PAGE_RELATED: Final = 5

# $2: the related items ranked online (`related_json`), or NULL for the article's stored
# list, when valid (see service.related.lists); without one the statement answers no row
# and the caller ranks online.
SELECT_ARTICLE_PAGE: Final = f"""
WITH rel AS (
    SELECT coalesce($2::text::json, (
        SELECT l.items FROM related_lists l
        WHERE l.article_id = $1
          AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = $1))) AS items
)
SELECT a.id, a.title, a.summary, a.body, a.url, a.canonical_url, a.published_at,
       a.published_at_estimated, a.updated_at, a.language, a.section, a.tags, a.authors,
       a.image_url, a.image_credit, a.image_caption, a.image_alt, a.image_width,
       a.image_height, s.id AS source_id, s.name AS source_name, s.domain AS source_domain,
       s.country AS source_country,
       ARRAY(SELECT ROW(x.salience, x.mention_count, e.id, e.name, e.slug, e.kind)
             FROM (SELECT l.entity_id, {_salience("l.salience")} AS salience, l.mention_count
                   FROM article_entities l WHERE l.article_id = a.id) x
             JOIN entities e ON e.id = x.entity_id
             ORDER BY x.salience DESC, x.entity_id) AS entities,
       ARRAY(SELECT ROW(r.item::text, c.id, c.title, c.published_at, cs.name, ARRAY(
                        SELECT se.name
                        FROM json_array_elements_text(r.item -> 5) WITH ORDINALITY k(id, i)
                        -- A merged entity's old id resolves to the entity it was merged into.
                        JOIN entities se ON se.id = coalesce(
                            (SELECT rd.entity_id FROM entity_redirects rd
                             WHERE rd.old_id = k.id::bigint), k.id::bigint)
                        ORDER BY k.i))
             FROM json_array_elements(rel.items) WITH ORDINALITY r(item, i)
             JOIN articles c ON c.id = (r.item ->> 0)::bigint
             JOIN sources cs ON cs.id = c.source_id
             WHERE r.i <= {ARTICLE_PAGE_RELATED}
             ORDER BY r.i) AS related
FROM rel LEFT JOIN articles a ON a.id = $1 LEFT JOIN sources s ON s.id = a.source_id
WHERE rel.items IS NOT NULL"""


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _article_page(r: Any) -> dict[str, Any] | None:
    if r["id"] is None:
        return None
    image = None
    if r["image_url"]:
        image = {
            "url": r["image_url"], "credit": r["image_credit"], "caption": r["image_caption"],
            "alt": r["image_alt"], "width": r["image_width"], "height": r["image_height"],
        }  # fmt: skip
    source = None
    if r["source_id"] is not None:
        source = {
            "id": _id("Source", r["source_id"]), "name": r["source_name"],
            "domain": r["source_domain"], "country": r["source_country"],
        }  # fmt: skip
    # entities: (salience, mention count, id, name, slug, kind)
    entities = [
        {"salience": salience, "mentionCount": mentions, "entity": {
            "id": _id("Entity", eid), "name": name, "slug": slug, "kind": kind,
        }}
        for salience, mentions, eid, name, slug, kind in r["entities"]
    ]  # fmt: skip
    # related: (stored item, id, title, published_at, source name, shared entity names);
    # an item is [article id, score, text similarity, time gap, relation, entity ids, ...].
    related = []
    for text, cid, title, published, source_name, shared in r["related"]:
        item = orjson.loads(text)
        related.append({
            "score": item[1],
            "article": {"id": encode_id("Article", cid), "title": title,
                        "publishedAt": published.isoformat(), "source": {"name": source_name}},
            "reasons": {"relation": item[4], "textSimilarity": item[2], "timeGapHours": item[3],
                        "sharedEntities": [{"name": n} for n in shared]},
        })  # fmt: skip
    return {
        "id": encode_id("Article", r["id"]), "title": r["title"], "summary": r["summary"],
        "body": r["body"], "url": r["url"], "canonicalUrl": r["canonical_url"],
        "publishedAt": r["published_at"].isoformat(),
        "publishedAtEstimated": r["published_at_estimated"],
        "updatedAt": _iso_or_none(r["updated_at"]), "language": r["language"],
        "section": r["section"], "tags": None if r["tags"] is None else list(r["tags"]),
        "authors": [{"name": name} for name in r["authors"] or ()],
        "image": image, "source": source, "entities": entities, "relatedStories": related,
    }  # fmt: skip


def related_json(items: Sequence[RelatedItem]) -> str:
    """The article page's related items, in order, for `SELECT_ARTICLE_PAGE`: each
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
    row = await db.fetchrow_planned(SELECT_ARTICLE_PAGE, article_id, related)
    if row is None:
        return None
    return orjson.dumps({"article": _article_page(row)}).decode()
