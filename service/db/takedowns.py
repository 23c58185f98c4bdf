"""Takedowns: remove articles, keep tombstones, refuse their URLs until an admin restores them.

A removed article's row is deleted, so its entity links and URLs go with it (foreign keys
cascade) and every read path (feeds, search, entity and source pages, counters kept by
triggers) forgets it in the same commit. What may still be said about it (id, URLs, when and
why) moves to `article_tombstones` under the same id, its URLs to `removed_urls`, and the
change feed lists it as REMOVED (the delete is numbered like any other change).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from service.db.changes import TOMBSTONE_COLUMNS, tombstone_record
from service.db.pool import Database, Writer
from service.db.records import TombstoneRecord

__all__ = [
    "Removal",
    "find_removed_urls",
    "remove_articles",
    "resolve_article_urls",
    "restore_urls",
]

RETRIES: Final = 3

SELECT_ARTICLES_BY_URL: Final = """
SELECT u.url, u.article_id FROM article_urls u WHERE u.url = ANY($1::text[])
"""

SELECT_REMOVED_URLS: Final = """
SELECT r.url, r.article_id FROM removed_urls r WHERE r.url = ANY($1::text[])
"""

# Rows locked in id order, so concurrent takedowns cannot deadlock each other.
LOCK_ARTICLES: Final = """
SELECT id, ingest_key_id FROM articles WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
"""

SELECT_REMOVED_IDS: Final = """
SELECT article_id FROM article_tombstones WHERE article_id = ANY($1::bigint[])
"""

INSERT_TOMBSTONES: Final = """
INSERT INTO article_tombstones
    (article_id, source_id, url, canonical_url, urls, reason, removed_by, ingest_key_id)
SELECT a.id, a.source_id, a.url, a.canonical_url,
       ARRAY(SELECT u.url FROM article_urls u WHERE u.article_id = a.id
             UNION SELECT a.url UNION SELECT a.canonical_url ORDER BY 1),
       $2, $3, a.ingest_key_id
FROM articles a WHERE a.id = ANY($1::bigint[])
ORDER BY a.id
"""

INSERT_REMOVED_URLS: Final = """
INSERT INTO removed_urls (url, article_id)
SELECT DISTINCT ON (u.url) u.url, t.article_id
FROM article_tombstones t, unnest(t.urls) AS u(url)
WHERE t.article_id = ANY($1::bigint[])
ORDER BY u.url, t.article_id
ON CONFLICT (url) DO UPDATE SET article_id = EXCLUDED.article_id
"""

DELETE_ARTICLES: Final = "DELETE FROM articles WHERE id = ANY($1::bigint[])"

SELECT_TOMBSTONES: Final = f"""
SELECT {TOMBSTONE_COLUMNS} FROM article_tombstones t WHERE t.article_id = ANY($1::bigint[])
"""

RESTORE: Final = """
WITH restored AS (
    DELETE FROM removed_urls r
    WHERE r.article_id IN (SELECT article_id FROM removed_urls WHERE url = ANY($1::text[]))
    RETURNING r.article_id
)
UPDATE article_tombstones t SET restored_at = now()
WHERE t.article_id IN (SELECT article_id FROM restored)
RETURNING t.article_id
"""


@dataclass(frozen=True, slots=True)
class Removal:
    """What became of one requested article: REMOVED, ALREADY_REMOVED, NOT_FOUND or FORBIDDEN."""

    article_id: int | None
    status: str
    tombstone: TombstoneRecord | None = None


async def resolve_article_urls(db: Database, urls: Sequence[str]) -> dict[str, int]:
    """The article (live or removed) each canonicalised URL belongs to."""
    found: dict[str, int] = {}
    for sql in (SELECT_REMOVED_URLS, SELECT_ARTICLES_BY_URL):
        for row in await db.fetch(sql, list(urls)):
            found[row["url"]] = row["article_id"]
    return found


async def find_removed_urls(w: Writer, urls: Sequence[str]) -> dict[str, int]:
    """Which of `urls` belong to a removed article (not restored), and to which."""
    rows = await w.fetch(SELECT_REMOVED_URLS, sorted(set(urls)))
    return {row["url"]: row["article_id"] for row in rows}


async def _remove(
    w: Writer, ids: list[int], reason: str, removed_by: int | None, owner: int | None
) -> dict[int, Removal]:
    locked = {r["id"]: r["ingest_key_id"] for r in await w.fetch(LOCK_ARTICLES, ids)}
    allowed = sorted(i for i, key in locked.items() if owner is None or key == owner)
    outcomes = {i: Removal(i, "FORBIDDEN") for i in locked if i not in allowed}
    gone = [i for i in ids if i not in locked]
    if gone:
        removed_before = {r["article_id"] for r in await w.fetch(SELECT_REMOVED_IDS, gone)}
        for i in gone:
            outcomes[i] = Removal(i, "ALREADY_REMOVED" if i in removed_before else "NOT_FOUND")
    if allowed:
        await w.execute(INSERT_TOMBSTONES, allowed, reason, removed_by)
        await w.execute(INSERT_REMOVED_URLS, allowed)
        await w.execute(DELETE_ARTICLES, allowed)
        outcomes.update({i: Removal(i, "REMOVED") for i in allowed})
    tombstones = {}
    for row in await w.fetch(SELECT_TOMBSTONES, ids):
        record = tombstone_record(row)
        assert record is not None
        tombstones[record.article_id] = record
    return {
        i: Removal(o.article_id, o.status, tombstones.get(i))
        if o.status in ("REMOVED", "ALREADY_REMOVED")
        else o
        for i, o in outcomes.items()
    }


async def remove_articles(
    db: Database,
    article_ids: Sequence[int],
    reason: str,
    *,
    removed_by: int | None,
    owner: int | None = None,
) -> dict[int, Removal]:
    """Take down articles in one transaction; with `owner`, only those that key wrote last."""
    ids = sorted(set(article_ids))
    for attempt in range(RETRIES):
        try:
            async with db.transaction() as w:
                return await _remove(w, ids, reason, removed_by, owner)
        except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError):
            if attempt == RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def restore_urls(db: Database, urls: Sequence[str]) -> list[TombstoneRecord]:
    """Allow the removed articles with any of `urls` to be ingested again; their tombstones."""
    async with db.transaction() as w:
        ids = [r["article_id"] for r in await w.fetch(RESTORE, sorted(set(urls)))]
        rows = await w.fetch(SELECT_TOMBSTONES, ids) if ids else []
    records = [tombstone_record(row) for row in rows]
    return sorted((r for r in records if r is not None), key=lambda r: r.article_id)
