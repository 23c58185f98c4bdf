"""Batch writes: sources, the entity catalogue, articles and their entity links.

Every function runs a fixed number of statements per batch (rows travel as one jsonb
array through `jsonb_to_recordset`), inside the caller's transaction (`Database.transaction`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Final

from service.db.counters import fold_entity_counts, lock_folds
from service.db.pool import Database, Writer

__all__ = [
    "ArticleRow",
    "EntityRef",
    "EntityRow",
    "LinkRow",
    "SourceRow",
    "UpsertOutcome",
    "article_owners",
    "known_canonical_urls",
    "live_entities",
    "merge_entities",
    "record_urls",
    "replace_links",
    "resolve_entities",
    "upsert_articles",
    "upsert_entities",
    "upsert_sources",
]


@dataclass(frozen=True, slots=True)
class SourceRow:
    domain: str
    name: str
    country: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class EntityRow:
    name: str
    kind: str
    slug: str
    wikidata_id: str | None = None
    description: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EntityRef:
    """An entity named by an article: matched by Wikidata id, then by name or alias."""

    name: str
    kind: str
    slug: str
    wikidata_id: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleRow:
    source_id: int
    url: str
    canonical_url: str
    title: str
    published_at: datetime
    content_hash: bytes
    external_id: str | None = None
    summary: str | None = None
    body: str | None = None
    authors: tuple[str, ...] = ()
    language: str = "und"
    section: str | None = None
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    image_credit: str | None = None
    image_caption: str | None = None
    image_alt: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    published_at_estimated: bool = False
    ingest_key_id: int | None = None  # the API key writing it (None: written without a key)


@dataclass(frozen=True, slots=True)
class LinkRow:
    article_id: int
    entity_id: int
    salience: float
    mention_count: int = 1


@dataclass(frozen=True, slots=True)
class UpsertOutcome:
    id: int
    status: str  # CREATED | UPDATED | UNCHANGED | FORBIDDEN (another key's article)
    published_at: datetime | None = None  # as stored, when written


def _json(rows: Sequence[object]) -> list[dict[str, object]]:
    """Rows (dataclasses of one class) as JSON-ready dicts (the pool's jsonb codec serialises
    them); bytes as hex. Faster than `asdict`, which deep-copies every value."""
    if not rows:
        return []
    names = _field_names(type(rows[0]))
    result = []
    for row in rows:
        values = {name: getattr(row, name) for name in names}
        for key, value in values.items():
            if isinstance(value, bytes):
                values[key] = value.hex()
        result.append(values)
    return result


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


INSERT_SOURCES: Final = """
INSERT INTO sources (domain, name, country, language)
SELECT x.domain, x.name, x.country, x.language
FROM jsonb_to_recordset($1::jsonb) AS x(domain text, name text, country text, language text)
ON CONFLICT (domain) DO NOTHING
"""

SELECT_SOURCE_IDS: Final = "SELECT domain, id FROM sources WHERE domain = ANY($1::text[])"


async def upsert_sources(w: Writer, rows: Sequence[SourceRow]) -> dict[str, int]:
    """Create unknown sources (an existing source keeps its name); domain → id."""
    unique = list({row.domain: row for row in rows}.values())
    await w.execute(INSERT_SOURCES, _json(unique))
    found = await w.fetch(SELECT_SOURCE_IDS, [row.domain for row in unique])
    return {r["domain"]: r["id"] for r in found}


SELECT_ENTITY_KEYS: Final = """
SELECT id, slug, wikidata_id FROM entities
WHERE wikidata_id = ANY($1::text[]) OR slug = ANY($2::text[])
"""

# Concurrent batches may create the same entity: the loser of the race skips the row and
# reads the winner's id afterwards (SELECT_ENTITY_KEYS again).
INSERT_ENTITIES: Final = """
INSERT INTO entities (name, kind, slug, wikidata_id, description)
SELECT x.name, x.kind, x.slug, x.wikidata_id, x.description
FROM jsonb_to_recordset($1::jsonb)
     AS x(name text, kind text, slug text, wikidata_id text, description text)
ORDER BY x.slug
ON CONFLICT DO NOTHING
"""

UPDATE_ENTITIES: Final = """
UPDATE entities e
SET name = x.name, kind = x.kind,
    wikidata_id = coalesce(x.wikidata_id, e.wikidata_id),
    description = coalesce(x.description, e.description),
    updated_at = now()
FROM jsonb_to_recordset($1::jsonb)
     AS x(id bigint, name text, kind text, wikidata_id text, description text)
WHERE e.id = x.id
"""

INSERT_ALIASES: Final = """
INSERT INTO entity_aliases (entity_id, alias)
SELECT x.entity_id, x.alias
FROM jsonb_to_recordset($1::jsonb) AS x(entity_id bigint, alias text)
ON CONFLICT DO NOTHING
"""


async def upsert_entities(w: Writer, rows: Sequence[EntityRow]) -> list[int]:
    """Create or update catalogue entities (matched by Wikidata id, then slug); ids in order."""
    existing = await w.fetch(
        SELECT_ENTITY_KEYS,
        [r.wikidata_id for r in rows if r.wikidata_id],
        [r.slug for r in rows],
    )
    by_wikidata = {e["wikidata_id"]: e["id"] for e in existing if e["wikidata_id"]}
    by_slug = {e["slug"]: e["id"] for e in existing}
    ids: list[int | None] = []
    new_rows: dict[str, EntityRow] = {}
    updates: list[tuple[int, dict[str, object]]] = []
    for row in rows:
        found = by_wikidata.get(row.wikidata_id) if row.wikidata_id else None
        if found is None and row.slug in by_slug and row.slug not in new_rows:
            found = by_slug[row.slug]
        ids.append(found)
        if found is not None:
            updates.append((found, {**asdict(row), "id": found}))
        elif row.slug not in new_rows:
            new_rows[row.slug] = row
    if new_rows:
        await w.execute(INSERT_ENTITIES, _json(list(new_rows.values())))
        created = await w.fetch(
            SELECT_ENTITY_KEYS,
            [r.wikidata_id for r in new_rows.values() if r.wikidata_id],
            list(new_rows),
        )
        by_slug.update({r["slug"]: r["id"] for r in created})
        for r in created:
            if r["wikidata_id"]:
                by_wikidata[r["wikidata_id"]] = r["id"]
        for slug, row in new_rows.items():
            if slug not in by_slug and row.wikidata_id in by_wikidata:
                # Its Wikidata id already belonged to an entity under another slug.
                by_slug[slug] = by_wikidata[row.wikidata_id]
    if updates:
        # In id order, so two batches updating the same entities lock them alike.
        await w.execute(UPDATE_ENTITIES, [u for _, u in sorted(updates, key=lambda p: p[0])])
    result = [
        found if found is not None else by_slug[row.slug]
        for found, row in zip(ids, rows, strict=True)
    ]
    aliases = [
        {"entity_id": entity_id, "alias": alias}
        for entity_id, row in zip(result, rows, strict=True)
        for alias in row.aliases
        if alias != row.name
    ]
    if aliases:
        await w.execute(INSERT_ALIASES, aliases)
    return result


SELECT_ENTITIES_BY_REF: Final = """
SELECT x.ord, coalesce(
    (SELECT e.id FROM entities e WHERE e.wikidata_id = x.wikidata_id),
    (SELECT e.id FROM entities e
     WHERE e.search_key = newsgraph_search_key(x.name) AND e.kind = x.kind
     ORDER BY e.article_count DESC, e.id LIMIT 1),
    (SELECT a.entity_id FROM entity_aliases a JOIN entities e ON e.id = a.entity_id
     WHERE a.search_key = newsgraph_search_key(x.name) AND e.kind = x.kind
     ORDER BY e.article_count DESC, e.id LIMIT 1)
) AS id
FROM jsonb_to_recordset($1::jsonb) AS x(ord int, name text, kind text, wikidata_id text)
"""


async def resolve_entities(w: Writer, refs: Sequence[EntityRef]) -> list[int]:
    """Entity ids for `refs`, in order; entities not yet in the catalogue are created."""
    payload = [
        {"ord": i, "name": r.name, "kind": r.kind, "wikidata_id": r.wikidata_id}
        for i, r in enumerate(refs)
    ]
    rows = await w.fetch(SELECT_ENTITIES_BY_REF, payload)
    ids: list[int | None] = [None] * len(refs)
    for row in rows:
        ids[row["ord"]] = row["id"]
    missing = [i for i, found in enumerate(ids) if found is None]
    if missing:
        created = await upsert_entities(
            w,
            [
                EntityRow(refs[i].name, refs[i].kind, refs[i].slug, refs[i].wikidata_id)
                for i in missing
            ],
        )
        for i, entity_id in zip(missing, created, strict=True):
            ids[i] = entity_id
    return [i for i in ids if i is not None]


ARTICLE_FIELDS: Final = """
    source_id bigint, url text, canonical_url text, title text, published_at timestamptz,
    content_hash text, external_id text, summary text, body text, authors text[], language text,
    section text, tags text[], image_url text, image_credit text, image_caption text,
    image_alt text, image_width int, image_height int, published_at_estimated boolean,
    ingest_key_id bigint"""

UPSERT_ARTICLES: Final = f"""
INSERT INTO articles AS a (
    source_id, url, canonical_url, title, published_at, content_hash, external_id, summary,
    body, authors, language, section, tags, image_url, image_credit, image_caption, image_alt,
    image_width, image_height, published_at_estimated, ingest_key_id)
SELECT x.source_id, x.url, x.canonical_url, x.title, x.published_at,
       decode(x.content_hash, 'hex'), x.external_id, x.summary, x.body,
       coalesce(x.authors, '{{}}'), x.language, x.section, coalesce(x.tags, '{{}}'),
       x.image_url, x.image_credit, x.image_caption, x.image_alt, x.image_width, x.image_height,
       x.published_at_estimated, x.ingest_key_id
FROM jsonb_to_recordset($1::jsonb) AS x({ARTICLE_FIELDS})
ON CONFLICT (canonical_url) DO UPDATE SET
    source_id = EXCLUDED.source_id, url = EXCLUDED.url, title = EXCLUDED.title,
    published_at = CASE WHEN EXCLUDED.published_at_estimated AND NOT a.published_at_estimated
                        THEN a.published_at ELSE EXCLUDED.published_at END,
    published_at_estimated = EXCLUDED.published_at_estimated AND a.published_at_estimated,
    content_hash = EXCLUDED.content_hash, external_id = EXCLUDED.external_id,
    summary = EXCLUDED.summary, body = EXCLUDED.body, authors = EXCLUDED.authors,
    language = EXCLUDED.language, section = EXCLUDED.section, tags = EXCLUDED.tags,
    image_url = EXCLUDED.image_url, image_credit = EXCLUDED.image_credit,
    image_caption = EXCLUDED.image_caption, image_alt = EXCLUDED.image_alt,
    image_width = EXCLUDED.image_width, image_height = EXCLUDED.image_height,
    ingest_key_id = EXCLUDED.ingest_key_id, updated_at = now()
WHERE a.content_hash IS DISTINCT FROM EXCLUDED.content_hash
  -- A scoped key ($2) never overwrites an article another key wrote last.
  AND ($2::bigint IS NULL OR a.ingest_key_id IS NULL OR a.ingest_key_id = $2)
RETURNING a.id, a.canonical_url, a.published_at, (xmax = 0) AS inserted
"""

SELECT_KNOWN_URLS: Final = """
SELECT u.url, a.canonical_url FROM article_urls u JOIN articles a ON a.id = u.article_id
WHERE u.url = ANY($1::text[])
"""


async def known_canonical_urls(w: Writer | Database, urls: Sequence[str]) -> dict[str, str]:
    """For each URL already seen, the canonical URL of the article it belongs to."""
    rows = await w.fetch(SELECT_KNOWN_URLS, list(urls))
    return {r["url"]: r["canonical_url"] for r in rows}


INSERT_URLS: Final = """
INSERT INTO article_urls (url, article_id)
SELECT x.url, x.article_id FROM jsonb_to_recordset($1::jsonb) AS x(url text, article_id bigint)
ORDER BY x.url
ON CONFLICT (url) DO NOTHING
"""


async def record_urls(w: Writer, urls: Sequence[tuple[str, int]]) -> None:
    """Remember the URLs seen for articles (a URL keeps its first article)."""
    if urls:
        await w.execute(INSERT_URLS, [{"url": u, "article_id": a} for u, a in sorted(set(urls))])


SELECT_ARTICLE_IDS_BY_URL: Final = """
SELECT canonical_url, id, content_hash, ingest_key_id FROM articles
WHERE canonical_url = ANY($1::text[])
"""


async def upsert_articles(
    w: Writer, rows: Sequence[ArticleRow], *, scoped_key: int | None = None
) -> list[UpsertOutcome]:
    """Insert or update by canonical URL; rows must have distinct canonical URLs.

    With `scoped_key`, an article another key wrote last is left alone (FORBIDDEN).
    """
    written = await w.fetch(UPSERT_ARTICLES, _json(rows), scoped_key)
    outcomes = {
        r["canonical_url"]: UpsertOutcome(
            r["id"], "CREATED" if r["inserted"] else "UPDATED", r["published_at"]
        )
        for r in written
    }
    hashes = {row.canonical_url: row.content_hash for row in rows}
    unchanged = [row.canonical_url for row in rows if row.canonical_url not in outcomes]
    if unchanged:
        for r in await w.fetch(SELECT_ARTICLE_IDS_BY_URL, unchanged):
            owner = r["ingest_key_id"]
            refused = (
                scoped_key is not None
                and owner not in (None, scoped_key)
                and bytes(r["content_hash"]) != hashes[r["canonical_url"]]
            )
            outcomes[r["canonical_url"]] = UpsertOutcome(
                r["id"], "FORBIDDEN" if refused else "UNCHANGED"
            )
    return [outcomes[row.canonical_url] for row in rows]


SELECT_OWNERS: Final = """
SELECT canonical_url, ingest_key_id FROM articles WHERE canonical_url = ANY($1::text[])
ORDER BY canonical_url
FOR UPDATE
"""


async def article_owners(w: Writer, canonical_urls: Sequence[str]) -> dict[str, int | None]:
    """The key that last wrote each existing article (locked until the transaction ends)."""
    rows = await w.fetch(SELECT_OWNERS, sorted(canonical_urls))
    return {r["canonical_url"]: r["ingest_key_id"] for r in rows}


# Migration 0014: links have no foreign keys; what the keys' checks gave, these give once a
# batch. The rows stay locked until the transaction ends: no merge deletes them meanwhile.
LOCK_LIVE_ENTITIES: Final = """
SELECT id FROM entities WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE
"""
SELECT_REDIRECTS: Final = """
SELECT old_id, entity_id FROM entity_redirects WHERE old_id = ANY($1::bigint[])
"""


async def live_entities(w: Writer, entity_ids: Sequence[int]) -> dict[int, int]:
    """Each of these entity ids → the live entity to link: itself, or the survivor of the
    merge that removed it (a linker built before a merge still knows the merged id). Ids of
    no entity and no redirect are left out. The live entities are locked (`FOR KEY SHARE`,
    in id order) until the caller's transaction ends, so none is merged away before the
    links commit."""
    target = {i: i for i in entity_ids}
    locked: set[int] = set()
    # A survivor merged away between two statements is looked up again (rarely needed).
    for _ in range(3):
        pending = sorted({t for t in target.values() if t not in locked})
        if not pending:
            break
        locked.update(r["id"] for r in await w.fetch(LOCK_LIVE_ENTITIES, pending))
        missing = [t for t in pending if t not in locked]
        if not missing:
            break
        rows = await w.fetch(SELECT_REDIRECTS, missing)
        redirects = {r["old_id"]: r["entity_id"] for r in rows}
        target = {
            given: redirects.get(t, t)
            for given, t in target.items()
            if t in locked or t in redirects
        }
    return {given: t for given, t in target.items() if t in locked}


DELETE_LINKS: Final = "DELETE FROM article_entities WHERE article_id = ANY($1::bigint[])"

# Typed arrays (binary on the wire) rather than JSON: the links are the most numerous rows.
INSERT_LINKS: Final = """
INSERT INTO article_entities (article_id, entity_id, salience, mention_count, published_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::real[], $4::int[], $5::timestamptz[])
"""


async def replace_links(
    w: Writer,
    links: Sequence[LinkRow],
    published: Mapping[int, datetime],
    *,
    replaced: Sequence[int] = (),
) -> None:
    """Store `links` (one per article and entity) of articles published at `published`
    (article id → publication time as stored), after removing every link of `replaced`."""
    if replaced:
        await w.execute(DELETE_LINKS, list(replaced))
    if links:
        await w.execute(
            INSERT_LINKS,
            [link.article_id for link in links],
            [link.entity_id for link in links],
            [link.salience for link in links],
            [link.mention_count for link in links],
            [published[link.article_id] for link in links],
        )


# The articles whose links a merge moves, locked as a key check would: no takedown deletes
# one before the moved links commit (migration 0014).
LOCK_MERGED_ARTICLES: Final = """
SELECT id FROM articles
WHERE id IN (SELECT article_id FROM article_entities WHERE entity_id = ANY($1::bigint[]))
ORDER BY id FOR KEY SHARE
"""

# Only articles linked to a merged entity change (the survivor's other links stay as they are).
MERGE_LINKS: Final = """
INSERT INTO article_entities (article_id, entity_id, salience, mention_count, published_at)
SELECT l.article_id, $1, max(l.salience), sum(l.mention_count), l.published_at
FROM article_entities l
WHERE (l.entity_id = ANY($2::bigint[]) OR l.entity_id = $1)
  AND l.article_id IN (SELECT article_id FROM article_entities WHERE entity_id = ANY($2::bigint[]))
GROUP BY l.article_id, l.published_at
ORDER BY l.article_id
ON CONFLICT (article_id, entity_id) DO UPDATE
SET salience = EXCLUDED.salience, mention_count = EXCLUDED.mention_count
"""

MERGE_ALIASES: Final = """
INSERT INTO entity_aliases (entity_id, alias)
SELECT $1, x.alias FROM (
    SELECT alias FROM entity_aliases WHERE entity_id = ANY($2::bigint[])
    UNION SELECT name FROM entities WHERE id = ANY($2::bigint[])
) x
WHERE x.alias <> (SELECT name FROM entities WHERE id = $1)
ON CONFLICT DO NOTHING
"""

MERGE_REDIRECTS: Final = """
WITH moved AS (
    UPDATE entity_redirects SET entity_id = $1 WHERE entity_id = ANY($2::bigint[])
)
INSERT INTO entity_redirects (old_id, old_slug, entity_id)
SELECT id, slug, $1 FROM entities WHERE id = ANY($2::bigint[])
"""

LOCK_ENTITIES: Final = "SELECT id FROM entities WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"

DELETE_ENTITIES: Final = "DELETE FROM entities WHERE id = ANY($1::bigint[])"

SELECT_WIKIDATA: Final = "SELECT min(wikidata_id) FROM entities WHERE id = ANY($1::bigint[])"

ADOPT_WIKIDATA: Final = """
UPDATE entities SET wikidata_id = coalesce(wikidata_id, $2), updated_at = now() WHERE id = $1
"""


async def merge_entities(w: Writer, into: int, sources: Sequence[int]) -> bool:
    """Fold `sources` into `into`: links, aliases, names and ids move; False if one is missing."""
    sources = sorted(set(sources) - {into})
    await lock_folds(w)
    locked = await w.fetch(LOCK_ENTITIES, [into, *sources])
    if len(locked) != len(sources) + 1:
        return False
    if not sources:
        return True
    await w.execute(LOCK_MERGED_ARTICLES, sources)
    await w.execute(MERGE_LINKS, into, sources)
    await w.execute(MERGE_ALIASES, into, sources)
    await w.execute(MERGE_REDIRECTS, into, sources)
    # The source entities' Wikidata ids must be free before the survivor can take one.
    wikidata = await w.fetchval(SELECT_WIKIDATA, sources)
    await w.execute(DELETE_ENTITIES, sources)
    if wikidata is not None:
        await w.execute(ADOPT_WIKIDATA, into, wikidata)
    # The survivor's count is exact at once (the caller shows it); the merged ones are gone.
    await fold_entity_counts(w, [into])
    return True
