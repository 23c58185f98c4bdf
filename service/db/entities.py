"""Entity reads: lookups, aliases, per-article links, co-mentions and autocomplete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from service.db.pool import Database
from service.db.records import ArticleEntityRecord, CoMentionRecord, EntityRecord

__all__ = [
    "fetch_aliases",
    "fetch_article_entities",
    "fetch_co_mentioned",
    "fetch_entities_by_ids",
    "fetch_entity_by_slug",
    "like_pattern",
    "list_entities",
]

ENTITY_COLUMNS: Final = (
    "e.id, e.kind, e.name, e.slug, e.wikidata_id, e.description, e.article_count"
)

# A merged entity's old id and slug resolve to the entity it was merged into.
SELECT_ENTITIES_BY_IDS: Final = f"""
SELECT k.id AS key, {ENTITY_COLUMNS}
FROM unnest($1::bigint[]) AS k(id)
JOIN entities e
  ON e.id = coalesce((SELECT r.entity_id FROM entity_redirects r WHERE r.old_id = k.id), k.id)
"""

SELECT_ENTITY_BY_SLUG: Final = f"""
SELECT {ENTITY_COLUMNS} FROM entities e
WHERE e.slug = $1
   OR e.id = (SELECT r.entity_id FROM entity_redirects r WHERE r.old_slug = $1)
ORDER BY e.slug = $1 DESC
LIMIT 1
"""

SELECT_ALIASES: Final = """
SELECT entity_id, alias FROM entity_aliases WHERE entity_id = ANY($1::bigint[])
ORDER BY entity_id, alias
"""

# Salience rounded to 4 decimals in float8 arithmetic, as the compiled pages write it
# (service.db.pages._salience).
SELECT_ARTICLE_ENTITIES: Final = """
SELECT article_id, entity_id, round(salience::float8 * 10000) / 10000 AS salience, mention_count
FROM article_entities
WHERE article_id = ANY($1::bigint[])
ORDER BY article_id, salience DESC, entity_id
"""

# Co-mentions are counted over each entity's latest $3 articles: a bounded, recent window
# instead of the whole history of a popular entity.
SELECT_CO_MENTIONED: Final = """
SELECT parent.id AS entity_id, co.other_id, co.count
FROM unnest($1::bigint[]) AS parent(id)
CROSS JOIN LATERAL (
    SELECT o.entity_id AS other_id, count(*)::int AS count
    FROM (
        SELECT l.article_id FROM article_entities l
        WHERE l.entity_id = parent.id
        ORDER BY l.published_at DESC, l.article_id DESC
        LIMIT $3
    ) recent
    JOIN article_entities o ON o.article_id = recent.article_id AND o.entity_id <> parent.id
    GROUP BY o.entity_id
    ORDER BY count(*) DESC, o.entity_id
    LIMIT $2
) co
"""

CO_MENTION_WINDOW: Final = 1000


def like_pattern(text: str) -> str:
    """Escape LIKE wildcards so user input matches literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def fetch_entities_by_ids(db: Database, ids: Sequence[int]) -> dict[int, EntityRecord]:
    rows = await db.fetch(SELECT_ENTITIES_BY_IDS, list(ids))
    result = {}
    for row in rows:
        values = dict(row)
        key = values.pop("key")
        result[key] = EntityRecord(**values)
    return result


async def fetch_entity_by_slug(db: Database, slug: str) -> EntityRecord | None:
    row = await db.fetchrow(SELECT_ENTITY_BY_SLUG, slug)
    return EntityRecord(**row) if row is not None else None


async def fetch_aliases(db: Database, entity_ids: Sequence[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for row in await db.fetch(SELECT_ALIASES, list(entity_ids)):
        result.setdefault(row["entity_id"], []).append(row["alias"])
    return result


async def fetch_article_entities(
    db: Database, article_ids: Sequence[int]
) -> dict[int, list[ArticleEntityRecord]]:
    result: dict[int, list[ArticleEntityRecord]] = {}
    for row in await db.fetch(SELECT_ARTICLE_ENTITIES, list(article_ids)):
        result.setdefault(row["article_id"], []).append(ArticleEntityRecord(**row))
    return result


async def fetch_co_mentioned(
    db: Database, entity_ids: Sequence[int], first: int
) -> dict[int, list[CoMentionRecord]]:
    result: dict[int, list[CoMentionRecord]] = {}
    rows = await db.fetch(SELECT_CO_MENTIONED, list(entity_ids), first, CO_MENTION_WINDOW)
    for row in rows:
        result.setdefault(row["entity_id"], []).append(CoMentionRecord(**row))
    return result


# Autocomplete ranks a name or alias starting with the text first (bucket 2), then one with a
# word starting with it (bucket 1, texts of three characters or more), then popularity. Each
# branch takes its own top `limit` in popularity order, so a short, common prefix ("st") costs
# a walk down the popularity index, not a sort of every match. Prefixes are ranges on the
# text_pattern_ops indexes (~>=~, ~<~): unlike LIKE, they use the index in generic plans too.
_KEY: Final = "newsgraph_search_key($1)"
_PREFIX: Final = f"({{t}}.search_key ~>=~ {_KEY} AND {{t}}.search_key ~<~ ({_KEY} || chr(1114111)))"
# $2 is the text with LIKE's wildcards escaped.
_WORD: Final = f"{{t}}.search_key LIKE '% ' || newsgraph_search_key($2) || '%' AND NOT {_PREFIX}"


async def list_entities(
    db: Database,
    *,
    search: str | None,
    kind: str | None,
    after: tuple[int, ...] | None,
    limit: int,
) -> list[tuple[EntityRecord, tuple[int, ...]]]:
    """A page of entities with each row's keyset position (for its cursor)."""
    params: list[object] = []

    def p(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    if search is None:
        where = []
        if kind is not None:
            where.append(f"e.kind = {p(kind)}")
        if after is not None:
            where.append(f"(e.article_count, e.id) < ({p(after[0])}, {p(after[1])})")
        sql = (
            f"SELECT {ENTITY_COLUMNS} FROM entities e WHERE {' AND '.join(where) or 'true'} "
            f"ORDER BY e.article_count DESC, e.id DESC LIMIT {p(limit)}"
        )
        rows = await db.fetch(sql, *params)
        return [(EntityRecord(**row), (row["article_count"], row["id"])) for row in rows]

    p(search)
    branches = [(2, _PREFIX)]
    if len(search) >= 3:
        p(like_pattern(search))
        branches.append((1, _WORD))
    filters = []
    if kind is not None:
        filters.append(f"e.kind = {p(kind)}")
    if after is not None:
        cursor = f"({p(after[0])}::int, {p(after[1])}::int, {p(after[2])}::bigint)"
    n = p(limit)
    parts = []
    for bucket, match in branches:
        for table in ("names", "aliases"):
            where = [*filters]
            if after is not None:
                where.append(f"({bucket}, e.article_count, e.id) < {cursor}")
            if table == "names":
                # The planner walks the popularity index for common texts and the prefix or
                # trigram index for rare ones.
                source = "entities e"
                where.insert(0, match.format(t="e"))
            else:
                # Matching aliases first, then their entities by popularity: OFFSET 0 keeps the
                # planner from walking the popularity index and probing aliases entity by
                # entity (136k probes, 250 ms, for one rare alias prefix at 1M entities).
                source = (
                    f"(SELECT x.entity_id FROM entity_aliases x WHERE {match.format(t='x')} "
                    "OFFSET 0) x JOIN entities e ON e.id = x.entity_id"
                )
            parts.append(
                f"(SELECT e.id, {bucket} AS bucket FROM {source} "
                f"WHERE {' AND '.join(where) or 'true'} "
                f"ORDER BY e.article_count DESC, e.id DESC LIMIT {n})"
            )
    sql = f"""
SELECT {ENTITY_COLUMNS}, m.bucket
FROM (SELECT id, max(bucket) AS bucket FROM ({" UNION ALL ".join(parts)}) hits GROUP BY id) m
JOIN entities e ON e.id = m.id
ORDER BY m.bucket DESC, e.article_count DESC, e.id DESC
LIMIT {n}"""
    rows = await db.fetch(sql, *params)
    result: list[tuple[EntityRecord, tuple[int, ...]]] = []
    for row in rows:
        values = dict(row)
        bucket = values.pop("bucket")
        result.append((EntityRecord(**values), (bucket, row["article_count"], row["id"])))
    return result
