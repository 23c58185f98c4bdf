"""Benchmark parameters drawn from a generated database: entities, sources, articles, terms.

Shared by explain.py and latency.py. Sampling is deterministic for a given seed and database
(TABLESAMPLE ... REPEATABLE, ORDER BY on unique keys), so runs are comparable.
"""

from __future__ import annotations

import base64
import collections
import random
import re
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

__all__ = [
    "EntityPick",
    "Picks",
    "SourcePick",
    "end_cursor",
    "global_id",
    "pick",
    "schema_behind",
]

# Words of the generated summaries' sentence templates: frequent, but not what people search.
TEMPLATE_WORDS: Final = frozenset(
    str.split(
        """
    would while percent critics pointed according officials spokesperson statement sources
    familiar matter agency raising fresh questions drawing criticism opposition analysts local
    media reported pressure mounted welcomed investors report found monday tuesday wednesday
    thursday friday saturday sunday said announced warned confirmed argued insisted claimed
    about after ahead against despite
    """
    )
)
WORD: Final = re.compile(r"[a-zæøåéüö]{5,}")


@dataclass(frozen=True, slots=True)
class EntityPick:
    id: int
    slug: str
    name: str
    article_count: int


@dataclass(frozen=True, slots=True)
class SourcePick:
    id: int
    domain: str
    article_count: int


@dataclass(frozen=True, slots=True)
class Picks:
    popular_entity: EntityPick
    top_entities: list[EntityPick]  # the 20 most popular
    rare_entity: EntityPick  # the least popular entity that has articles
    entities: list[EntityPick]  # a random sample, weighted towards none
    popular_source: SourcePick
    small_source: SourcePick
    sources: list[SourcePick]
    latest_article_id: int
    article_ids: list[int]  # a random sample
    common_terms: list[str]  # each matches many articles (most frequent first)
    rare_terms: list[str]  # each matches a handful
    prefixes: list[str]  # 2-6 characters of real entity names (and of words inside them)
    max_article_id: int


def global_id(type_name: str, key: int) -> str:
    """The service's global id: base64url("Type:key") without padding."""
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


async def schema_behind(conn: asyncpg.Connection[Any]) -> str | None:
    """Why the database's schema is not the one the code expects, or None when it is."""
    from service.db.migrate import head_revision

    expected = head_revision()
    try:
        current = await conn.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        current = None
    if current == expected:
        return None
    return f"the database is at revision {current}, the code expects {expected}"


def _entity(row: asyncpg.Record | None) -> EntityPick:
    if row is None:
        raise SystemExit("the database has no entities: run bench/generate.py first")
    return EntityPick(row["id"], row["slug"], row["name"], row["article_count"])


def _source(row: asyncpg.Record) -> SourcePick:
    return SourcePick(row["id"], row["domain"], row["article_count"])


async def _term_count(conn: asyncpg.Connection[Any], term: str, cap: int) -> int:
    # The two languages the generator writes (the service ORs one arm per configuration).
    sql = (
        "SELECT count(*) FROM (SELECT 1 FROM articles a WHERE "
        "a.search_vector @@ websearch_to_tsquery('english', $1) "
        "OR a.search_vector @@ websearch_to_tsquery('norwegian', $1) LIMIT $2) c"
    )
    return int(await conn.fetchval(sql, term, cap))


async def pick(conn: asyncpg.Connection[Any], *, seed: int = 1, samples: int = 200) -> Picks:
    """Parameters for the benches, from the data in the database behind `conn`."""
    rng = random.Random(seed)
    entity_columns = "id, slug, name, article_count"
    rows = await conn.fetch(
        f"SELECT {entity_columns} FROM entities ORDER BY article_count DESC, id DESC LIMIT 20"
    )
    top = [_entity(r) for r in rows] or [_entity(None)]
    popular = top[0]
    rare = _entity(
        await conn.fetchrow(
            f"SELECT {entity_columns} FROM entities WHERE article_count > 0 "
            "ORDER BY article_count, id LIMIT 1"
        )
    )
    max_entity = int(await conn.fetchval("SELECT max(id) FROM entities"))
    entity_ids = [rng.randint(1, max_entity) for _ in range(samples)]
    entities = [
        _entity(r)
        for r in await conn.fetch(
            f"SELECT {entity_columns} FROM entities WHERE id = ANY($1::bigint[]) ORDER BY id",
            entity_ids,
        )
    ]
    rng.shuffle(entities)
    source_rows = await conn.fetch(
        "SELECT id, domain, article_count FROM sources ORDER BY article_count DESC, id"
    )
    sources = [_source(r) for r in source_rows]
    small = next((s for s in reversed(sources) if s.article_count > 0), sources[-1])
    max_article = int(await conn.fetchval("SELECT max(id) FROM articles"))
    latest = int(
        await conn.fetchval("SELECT id FROM articles ORDER BY published_at DESC, id DESC LIMIT 1")
    )
    article_ids = [rng.randint(1, max_article) for _ in range(samples)]

    # Terms: words of sampled English titles; the most frequent are common, the once-seen
    # are candidates for rare, checked against the whole table (capped counts).
    texts = await conn.fetch(
        "SELECT title, summary FROM articles TABLESAMPLE SYSTEM (0.5) REPEATABLE ($1) "
        "WHERE language = 'en' LIMIT 3000",
        seed,
    )
    title_words: collections.Counter[str] = collections.Counter()
    all_words: collections.Counter[str] = collections.Counter()
    for row in texts:
        title = WORD.findall(row["title"].lower())
        title_words.update(w for w in title if w not in TEMPLATE_WORDS)
        all_words.update(title)
        all_words.update(WORD.findall((row["summary"] or "").lower()))
    common = [w for w, _ in title_words.most_common(8)]
    once = sorted(w for w, n in all_words.items() if n == 1 and w not in TEMPLATE_WORDS)
    rng.shuffle(once)
    counted = []
    for word in once[:60]:
        n = await _term_count(conn, word, 1000)
        if 1 <= n <= 200:
            counted.append((n, word))
    rare_terms = [w for _, w in sorted(counted)][:10] or once[:3]

    # Autocomplete prefixes: starts of real names and of words inside them, 2 to 6 letters.
    names = [e.name for e in entities] + [popular.name]
    prefixes: list[str] = []
    for name in names:
        words = name.split()
        word = words[0] if len(words) == 1 or rng.random() < 0.7 else rng.choice(words[1:])
        length = rng.randint(2, 6)
        if len(word) >= 2:
            prefixes.append(word[:length])
    return Picks(
        popular_entity=popular,
        top_entities=top,
        rare_entity=rare,
        entities=entities,
        popular_source=sources[0],
        small_source=small,
        sources=sources,
        latest_article_id=latest,
        article_ids=article_ids,
        common_terms=common or ["government"],
        rare_terms=rare_terms,
        prefixes=prefixes,
        max_article_id=max_article,
    )


def end_cursor(data: Any) -> str | None:
    """The first pageInfo.endCursor (of a page with more after it) in a GraphQL result."""
    if isinstance(data, dict):
        info = data.get("pageInfo")
        if isinstance(info, dict) and info.get("hasNextPage") and info.get("endCursor"):
            return str(info["endCursor"])
        for value in data.values():
            found = end_cursor(value)
            if found:
                return found
    return None
