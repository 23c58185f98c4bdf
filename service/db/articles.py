"""Article reads: by id, by URL, and keyset-paginated lists (feeds, search, per parent).

Lists are keyset-paginated on (published_at, id), or on (rank, id) for relevance, so a
cursor stays valid while articles arrive. Lists under many parents (each entity's latest
articles, each source's) are one statement: a LATERAL subquery per parent id.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import orjson

from service.db.pool import Database
from service.db.records import ArticleRecord
from service.db.search import SearchConfigs, search_condition

__all__ = [
    "ArticleFilter",
    "ArticleOrder",
    "ArticlePageQuery",
    "Scope",
    "count_all_articles",
    "count_articles",
    "fetch_article_bodies",
    "fetch_article_by_url",
    "fetch_article_pages",
    "fetch_articles_by_ids",
]

ARTICLE_COLUMNS: Final = """
    a.id, a.source_id, a.url, a.canonical_url, a.external_id, a.title, a.summary, a.authors,
    a.language, a.section, a.tags, a.image_url, a.image_credit, a.image_caption, a.image_alt,
    a.image_width, a.image_height, a.published_at, a.published_at_estimated, a.updated_at,
    a.ingested_at"""

SELECT_ARTICLES_BY_IDS: Final = f"""
SELECT {ARTICLE_COLUMNS}
FROM articles a
WHERE a.id = ANY($1::bigint[])
"""

SELECT_ARTICLE_BY_URL: Final = f"""
SELECT {ARTICLE_COLUMNS}
FROM article_urls u JOIN articles a ON a.id = u.article_id
WHERE u.url = $1
"""

SELECT_ARTICLE_BODIES: Final = """
SELECT a.id, a.body FROM articles a WHERE a.id = ANY($1::bigint[])
"""


RELEVANCE_WINDOW: Final = 1000


class ArticleOrder(enum.Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    RELEVANCE = "RELEVANCE"


class Scope(enum.Enum):
    """Whose articles a list holds: everyone's, or each parent source's or entity's."""

    ALL = "all"
    SOURCE = "source"
    ENTITY = "entity"


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    source_ids: tuple[int, ...] = ()
    entity_ids: tuple[int, ...] = ()
    languages: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    published_after: datetime | None = None
    published_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class ArticlePageQuery:
    """One page request; hashable, so equal requests under many parents batch together."""

    filter: ArticleFilter = field(default_factory=ArticleFilter)
    search: str | None = None
    # The text-search configurations the search runs with (those of the languages present).
    configs: SearchConfigs = ()
    order: ArticleOrder = ArticleOrder.NEWEST
    # The keyset position after which the page starts: (published_at, id) for NEWEST and
    # OLDEST, (rank, id) for RELEVANCE.
    after: tuple[datetime | float, int] | None = None
    limit: int = 21


def _record(row: object) -> ArticleRecord:
    return ArticleRecord(**row)  # type: ignore[arg-type]


async def fetch_articles_by_ids(db: Database, ids: Sequence[int]) -> dict[int, ArticleRecord]:
    rows = await db.fetch(SELECT_ARTICLES_BY_IDS, list(ids))
    return {row["id"]: _record(row) for row in rows}


async def fetch_article_by_url(db: Database, canonical_url: str) -> ArticleRecord | None:
    row = await db.fetchrow(SELECT_ARTICLE_BY_URL, canonical_url)
    return _record(row) if row is not None else None


async def fetch_article_bodies(db: Database, ids: Sequence[int]) -> dict[int, str | None]:
    rows = await db.fetch(SELECT_ARTICLE_BODIES, list(ids))
    return {row["id"]: row["body"] for row in rows}


class _Params:
    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


def _conditions(query: ArticlePageQuery, p: _Params, *, skip_entities: bool = False) -> list[str]:
    f = query.filter
    where: list[str] = []
    if f.source_ids:
        where.append(f"a.source_id = ANY({p(list(f.source_ids), '::bigint[]')})")
    if f.languages:
        where.append(f"a.language = ANY({p(list(f.languages), '::text[]')})")
    if f.sections:
        where.append(f"a.section = ANY({p(list(f.sections), '::text[]')})")
    if f.published_after is not None:
        where.append(f"a.published_at >= {p(f.published_after)}")
    if f.published_before is not None:
        where.append(f"a.published_at < {p(f.published_before)}")
    if f.entity_ids and not skip_entities:
        where.append(
            "EXISTS (SELECT 1 FROM article_entities fe WHERE fe.article_id = a.id"
            f" AND fe.entity_id = ANY({p(list(f.entity_ids), '::bigint[]')}))"
        )
    if query.search is not None:
        where.append(search_condition(query.search, query.configs, p))
    return where


def _page_sql(
    query: ArticlePageQuery, p: _Params, *, via_links: bool, skip_entities: bool = False
) -> tuple[str, str]:
    """The inner SELECT of one page, and the ORDER BY that the outer query re-applies.

    `via_links` drives the scan from article_entities (alias l), whose denormalised
    published_at matches its (entity_id, published_at, article_id) index.
    """
    where = _conditions(query, p, skip_entities=skip_entities)
    key_time, key_id = (
        ("l.published_at", "l.article_id") if via_links else ("a.published_at", "a.id")
    )
    source = (
        "article_entities l JOIN articles a ON a.id = l.article_id" if via_links else "articles a"
    )
    if via_links:
        where.insert(0, "l.entity_id = parent.id")
    if query.order is ArticleOrder.RELEVANCE:
        return _relevance_sql(query, p, source, where, key_time, key_id)
    desc = query.order is ArticleOrder.NEWEST
    op, direction = ("<", "DESC") if desc else (">", "ASC")
    if query.after is not None:
        where.append(
            f"({key_time}, {key_id}) {op} ({p(query.after[0], '::timestamptz')}, "
            f"{p(query.after[1], '::bigint')})"
        )
    sql = (
        f"SELECT {ARTICLE_COLUMNS} FROM {source} WHERE {' AND '.join(where) or 'true'} "
        f"ORDER BY {key_time} {direction}, {key_id} {direction} LIMIT {p(query.limit)}"
    )
    return sql, f"published_at {direction}, id {direction}"


def _relevance_sql(
    query: ArticlePageQuery, p: _Params, source: str, where: list[str], key_time: str, key_id: str
) -> tuple[str, str]:
    # Ranking costs time per match, so only the newest RELEVANCE_WINDOW matches are ranked:
    # a common term matches a tenth of a large archive, and news search favours recent
    # coverage anyway. Keyset on (rank, id) pages through that window.
    assert query.search is not None
    rank = f"ts_rank_cd(a.search_vector, {_tsquery_for_row(p, query.search)}, 32)::float8"
    recent = (
        f"SELECT a.* FROM {source} WHERE {' AND '.join(where) or 'true'} "
        f"ORDER BY {key_time} DESC, {key_id} DESC LIMIT {p(RELEVANCE_WINDOW)}"
    )
    after = ""
    if query.after is not None:
        after = f"WHERE (rank, id) < ({p(query.after[0], '::float8')}, {p(query.after[1])})"
    sql = (
        f"SELECT * FROM (SELECT {ARTICLE_COLUMNS}, {rank} AS rank FROM ({recent}) a) ranked "
        f"{after} ORDER BY rank DESC, id DESC LIMIT {p(query.limit)}"
    )
    return sql, "rank DESC, id DESC"


def _tsquery_for_row(p: _Params, search: str) -> str:
    return f"websearch_to_tsquery(newsgraph_ts_config(a.language), {p(search)})"


def build_page_sql(query: ArticlePageQuery, scope: Scope) -> tuple[str, list[object]]:
    """The statement for one page under each parent id ($1); exposed for EXPLAIN benches."""
    p = _Params()
    if scope is Scope.ALL and not query.filter.entity_ids:
        inner, _ = _page_sql(query, p, via_links=False)
        return inner, p.values
    parents = p(None)  # placeholder for the parent ids, filled by the caller
    if scope is Scope.ALL:
        # Any of the filter's entities: walk each entity's index, then merge the pages.
        inner, outer_order = _page_sql(query, p, via_links=True, skip_entities=True)
        sql = (
            f"SELECT * FROM (SELECT DISTINCT ON (page.id) page.* FROM unnest({parents}::bigint[]) "
            f"AS parent(id) CROSS JOIN LATERAL ({inner}) page ORDER BY page.id) merged "
            f"ORDER BY {outer_order} LIMIT {p(query.limit)}"
        )
        p.values[0] = list(query.filter.entity_ids)
        return sql, p.values
    if scope is Scope.SOURCE:
        inner, _ = _page_sql(query, p, via_links=False)
        inner = inner.replace(" WHERE ", " WHERE a.source_id = parent.id AND ", 1)
    else:
        inner, _ = _page_sql(query, p, via_links=True)
    sql = (
        f"SELECT parent.id AS parent_id, page.* FROM unnest({parents}::bigint[]) AS parent(id) "
        f"CROSS JOIN LATERAL ({inner}) page"
    )
    return sql, p.values


async def fetch_article_pages(
    db: Database, query: ArticlePageQuery, scope: Scope, parent_ids: Sequence[int] = ()
) -> dict[int, list[tuple[ArticleRecord, float | None]]]:
    """One page per parent (key 0 for Scope.ALL), each row with its rank for RELEVANCE."""
    sql, params = build_page_sql(query, scope)
    if scope is not Scope.ALL:
        params[0] = list(parent_ids)
    rows = await db.fetch(sql, *params)
    pages: dict[int, list[tuple[ArticleRecord, float | None]]] = {}
    for row in rows:
        values = dict(row)
        parent = values.pop("parent_id", 0)
        rank = values.pop("rank", None)
        pages.setdefault(parent, []).append((ArticleRecord(**values), rank))
    return pages


async def count_articles(
    db: Database, query: ArticlePageQuery, scope: Scope, parent_ids: Sequence[int], cap: int
) -> dict[int, int]:
    """Matching articles per parent (key 0 for Scope.ALL), counted up to `cap` + 1."""
    p = _Params()
    where = _conditions(query, p, skip_entities=scope is Scope.ALL)
    if scope is Scope.ALL and not query.filter.entity_ids:
        source = "articles a"
        parent_sql = None
    elif scope is Scope.SOURCE:
        source = "articles a"
        where.insert(0, "a.source_id = parent.id")
        parent_sql = p(list(parent_ids), "::bigint[]")
    else:
        source = "article_entities l JOIN articles a ON a.id = l.article_id"
        where.insert(0, "l.entity_id = parent.id")
        ids = query.filter.entity_ids if scope is Scope.ALL else tuple(parent_ids)
        parent_sql = p(list(ids), "::bigint[]")
    where_sql = " AND ".join(where) if where else "true"
    limit = p(cap + 1)
    if parent_sql is None:
        sql = (
            f"SELECT 0 AS parent_id, count(*) AS n "
            f"FROM (SELECT 1 FROM {source} WHERE {where_sql} LIMIT {limit}) c"
        )
    elif scope is Scope.ALL:
        sql = (
            f"SELECT 0 AS parent_id, count(*) AS n FROM (SELECT DISTINCT a.id "
            f"FROM unnest({parent_sql}) AS parent(id) CROSS JOIN LATERAL "
            f"(SELECT a.id FROM {source} WHERE {where_sql} LIMIT {limit}) a LIMIT {limit}) c"
        )
    else:
        sql = (
            f"SELECT parent.id AS parent_id, (SELECT count(*) FROM (SELECT 1 FROM {source} "
            f"WHERE {where_sql} LIMIT {limit}) c) AS n FROM unnest({parent_sql}) AS parent(id)"
        )
    rows = await db.fetch(sql, *p.values)
    return {row["parent_id"]: row["n"] for row in rows}


# Every article has a source, whose maintained counter includes it.
COUNT_ALL_ARTICLES: Final = "SELECT coalesce(sum(article_count), 0)::bigint FROM sources"


async def count_all_articles(db: Database) -> int:
    """All articles, exactly, from the sources' counters (no scan)."""
    return int(await db.fetchval(COUNT_ALL_ARTICLES))


async def estimate_articles(db: Database, query: ArticlePageQuery) -> int:
    """The planner's row estimate for an unscoped article list (for counts beyond the cap)."""
    p = _Params()
    where = _conditions(query, p)
    where_sql = " AND ".join(where) if where else "true"
    plan = await db.fetchval(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM articles a WHERE {where_sql}", *p.values
    )
    parsed = orjson.loads(plan) if isinstance(plan, str) else plan
    return int(parsed[0]["Plan"]["Plan Rows"])
