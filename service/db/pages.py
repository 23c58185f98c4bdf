"""Whole pages as JSON built by PostgreSQL: one statement per page, for the hot operations.

Each function answers the `data` of one persisted operation of `schema/operations/` (the
feed, the entity page, the article page) as JSON text, exactly as the general GraphQL path
would (global ids, cursors and dates are built here the way `service.ids`,
`service.graphql.pagination` and strawberry write them). `service.graphql.compiled` decides
when a request may take this path; a test compares both paths operation by operation.

The JSON is `json`, not `jsonb`: jsonb would reorder the keys.

The article page's related stories come from the article's stored list when it is valid
(service.related.lists), in the same statement; otherwise they are ranked in Python first (as
the general path does) and the statement takes them, in order, as one `json` argument
(see `related_json`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from service.db.entities import CO_MENTION_WINDOW
from service.db.pool import Database
from service.related.find_related import RelatedItem

__all__ = ["article_page_json", "entity_page_json", "feed_json", "related_json"]


def _b64url(text_sql: str) -> str:
    # base64url without padding, as service.ids.b64encode. The texts encoded here (type names,
    # digits, ISO dates and the JSON punctuation of cursors) are ASCII without '>', '?' or
    # '~', and base64 of such bytes never holds '+' or '/' (a sextet of 62 or 63 needs a byte
    # >= 0xF8, or a byte ending in 0b111110 or 0b111111 in a group's last place: '>', '?',
    # '~', DEL), so the alphabet needs no translation; `tests/graphql/test_compiled.py`
    # checks that claim. PostgreSQL wraps base64 at 76 characters: long cursors lose the
    # newline. (translate() cost ~1.3 µs a call, most of a global id's price.)
    return f"rtrim(replace(encode(convert_to({text_sql}, 'UTF8'), 'base64'), E'\\n', ''), '=')"


def _gid(type_name: str, column: str) -> str:
    # Ids are short: their base64 never wraps.
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


def _newest_cursor(time_column: str, id_column: str) -> str:
    # orjson.dumps({"k": "newest", "v": [published_at.isoformat(), id]}), base64url.
    return _b64url(
        f"""'{{"k":"newest","v":[' || ({_iso(time_column)})::text || ',' || {id_column} || ']}}'"""
    )


def _entity_json(alias: str) -> str:
    return (
        f"json_build_object('id', {_gid('Entity', f'{alias}.id')}, 'name', {alias}.name, "
        f"'slug', {alias}.slug, 'kind', {alias}.kind)"
    )


def _top_entities(article: str, first: int) -> str:
    # Article.entities(first: N) { salience entity { id name slug kind } }, as the loader orders.
    return f"""coalesce((
        SELECT json_agg(json_build_object('salience', x.salience, 'entity', {_entity_json("e")})
                        ORDER BY x.salience DESC, x.entity_id)
        FROM (SELECT l.entity_id, {_salience("l.salience")} AS salience
              FROM article_entities l WHERE l.article_id = {article}
              ORDER BY 2 DESC, l.entity_id LIMIT {first}) x
        JOIN entities e ON e.id = x.entity_id), '[]'::json)"""


def _connection(rows: str, node: str, total: str, extra: str = "") -> str:
    """A connection over `rows` (a CTE of first+1 rows with `cursor`, `n` = row number)."""
    return f"""json_build_object(
        'totalCount', {total},{extra}
        'edges', coalesce((SELECT json_agg(json_build_object('cursor', p.cursor, 'node', {node})
                                     ORDER BY p.n)
                           FROM {rows} p JOIN sources s ON s.id = p.source_id
                           WHERE p.n <= $1), '[]'::json),
        'pageInfo', json_build_object(
            'hasNextPage', (SELECT count(*) FROM {rows}) > $1,
            'endCursor', (SELECT p.cursor FROM {rows} p WHERE p.n <= $1
                          ORDER BY p.n DESC LIMIT 1)))"""


_FEED_NODE: Final = f"""json_build_object(
    'id', {_gid("Article", "p.id")}, 'title', p.title, 'summary', p.summary, 'url', p.url,
    'publishedAt', {_iso("p.published_at")}, 'language', p.language,
    'source', json_build_object('id', {_gid("Source", "s.id")}, 'name', s.name, 'domain', s.domain),
    'entities', {_top_entities("p.id", 5)})"""


def _feed_sql(after: bool) -> str:
    keyset = "WHERE (a.published_at, a.id) < ($2::timestamptz, $3::bigint)" if after else ""
    # Every article has a source: the sources' maintained counters sum to the total.
    total = "(SELECT coalesce(sum(c.article_count), 0)::bigint FROM sources c)"
    connection = _connection("page", _FEED_NODE, total, "\n        'totalCountIsExact', true,")
    return f"""
WITH page AS (
    SELECT a.id, a.title, a.summary, a.url, a.published_at, a.language, a.source_id,
           {_newest_cursor("a.published_at", "a.id")} AS cursor,
           row_number() OVER (ORDER BY a.published_at DESC, a.id DESC) AS n
    FROM (SELECT * FROM articles a {keyset}
          ORDER BY a.published_at DESC, a.id DESC LIMIT $1 + 1) a
)
SELECT json_build_object('articles', {connection})::text"""


# Feed with `first`, `after` and no filter (see service.graphql.compiled for the variables).
SELECT_FEED_JSON: Final = _feed_sql(after=False)
SELECT_FEED_AFTER_JSON: Final = _feed_sql(after=True)

_ENTITY_ARTICLE_NODE: Final = f"""json_build_object(
    'id', {_gid("Article", "p.id")}, 'title', p.title, 'publishedAt', {_iso("p.published_at")},
    'source', json_build_object('id', {_gid("Source", "s.id")}, 'name', s.name, 'domain', s.domain),
    'entities', {_top_entities("p.id", 5)})"""


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
), page AS (
    SELECT a.id, a.title, a.published_at, a.source_id,
           {_newest_cursor("a.published_at", "a.id")} AS cursor,
           row_number() OVER (ORDER BY l.published_at DESC, l.article_id DESC) AS n
    FROM (SELECT l.article_id, l.published_at FROM ent
          JOIN article_entities l ON l.entity_id = ent.id {keyset}
          ORDER BY l.published_at DESC, l.article_id DESC LIMIT $1 + 1) l
    JOIN articles a ON a.id = l.article_id
)
SELECT json_build_object('entity', (SELECT json_build_object(
    'id', {_gid("Entity", "ent.id")}, 'name', ent.name, 'slug', ent.slug, 'kind', ent.kind,
    'aliases', coalesce((SELECT json_agg(al.alias ORDER BY al.alias) FROM entity_aliases al
                         WHERE al.entity_id = ent.id), '[]'::json),
    'wikidataId', ent.wikidata_id, 'description', ent.description,
    'articleCount', ent.article_count,
    'coMentioned', coalesce((
        SELECT json_agg(json_build_object('count', co.count, 'entity', {_entity_json("oe")})
                        ORDER BY co.count DESC, co.other_id)
        FROM (SELECT o.entity_id AS other_id, count(*)::int AS count
              FROM (SELECT l.article_id FROM article_entities l WHERE l.entity_id = ent.id
                    ORDER BY l.published_at DESC, l.article_id DESC
                    LIMIT {CO_MENTION_WINDOW}) recent
              JOIN article_entities o
                ON o.article_id = recent.article_id AND o.entity_id <> ent.id
              GROUP BY o.entity_id
              ORDER BY count(*) DESC, o.entity_id
              LIMIT 10) co
        JOIN entities oe ON oe.id = co.other_id), '[]'::json),
    'articles', {_connection("page", _ENTITY_ARTICLE_NODE, "ent.article_count")}
) FROM ent))::text"""


SELECT_ENTITY_PAGE_JSON: Final = _entity_page_sql(after=False)
SELECT_ENTITY_PAGE_AFTER_JSON: Final = _entity_page_sql(after=True)

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


async def feed_json(db: Database, first: int, after: tuple[datetime, int] | None) -> str:
    """`data` of the Feed operation without a filter."""
    if after is None:
        return str(await db.fetchval_planned(SELECT_FEED_JSON, first))
    return str(await db.fetchval_planned(SELECT_FEED_AFTER_JSON, first, *after))


async def entity_page_json(
    db: Database, slug: str, first: int, after: tuple[datetime, int] | None
) -> str:
    """`data` of the EntityPage operation."""
    if after is None:
        return str(await db.fetchval_planned(SELECT_ENTITY_PAGE_JSON, first, slug))
    return str(await db.fetchval_planned(SELECT_ENTITY_PAGE_AFTER_JSON, first, slug, *after))


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
