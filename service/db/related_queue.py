"""SQL of the related-stories indexing queue (migration 0007): enqueue, claim, read, depth.

The ingest transaction enqueues the ids it created or changed; an indexer's transaction
claims a batch (deleting the rows, which other indexers skip while it is uncommitted),
reads the articles, indexes them and commits, so a crash or a failed statement puts the ids
back. Enqueueing an id that is already queued updates its row instead of doing nothing:
that takes the row's lock, so an indexer cannot claim it before the ingest commits, and an
ingest that changes an article an indexer is indexing right now waits for that indexer's
commit and then queues the article again (otherwise the indexer could index the old text
and delete the id the change had just queued).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from service.db.notify import CHANNEL as CHANGES_CHANNEL
from service.db.pool import SESSION_SETTINGS, Database, Writer

__all__ = [
    "QUEUE_CHANNEL",
    "QueuedArticle",
    "claim",
    "enqueue",
    "lock_articles",
    "notify_indexed",
    "open_indexer_connection",
    "queue_depth",
]

# Sent by migration 0007's trigger at the commit of every enqueueing transaction.
QUEUE_CHANNEL: Final = "newsgraph_related_queue"

ENQUEUE: Final = """
INSERT INTO related_queue AS q (article_id)
SELECT id FROM unnest($1::bigint[]) AS x(id) ORDER BY id
ON CONFLICT (article_id) DO UPDATE SET queued_at = q.queued_at
"""


async def enqueue(w: Writer, article_ids: Sequence[int]) -> None:
    """Queue these articles for (re)indexing, in the caller's transaction (ids in key order,
    so concurrent batches lock queue rows in the same order)."""
    if article_ids:
        await w.execute(ENQUEUE, sorted(set(article_ids)))


# Rows another indexer (or an uncommitted enqueue) holds are skipped, not waited for. The
# claimed rows are deleted by key (`= ANY(ARRAY(...))`), not through `IN (SELECT ...)`, which
# the planner may answer with a hash join over the whole queue: a 1M-id queue drained in
# 6.2-6.5 s instead of 8.0-8.9 (`bench/refresh_claims.py --log queue --rows 1000000`).
CLAIM: Final = """
DELETE FROM related_queue q
WHERE q.article_id = ANY(ARRAY(
    SELECT article_id FROM related_queue ORDER BY article_id LIMIT $1 FOR UPDATE SKIP LOCKED
))
RETURNING q.article_id
"""


async def claim(w: Writer, limit: int) -> list[int]:
    """Take up to `limit` queued ids (lowest first); they return if the transaction fails."""
    rows = await w.fetch(CLAIM, limit)
    return sorted(r["article_id"] for r in rows)


@dataclass(frozen=True, slots=True)
class QueuedArticle:
    id: int
    source_id: int
    language: str
    title: str
    summary: str | None
    body: str | None
    published_at: datetime
    published_at_estimated: bool
    indexed: bool  # it has signals already (a changed article): no new document to count


# KEY SHARE locks (id order, as takedowns take theirs): a takedown of one of these waits for
# this transaction, and one that came first makes its article vanish from the answer.
LOCK_ARTICLES: Final = """
SELECT a.id, a.source_id, a.language, a.title, a.summary, a.body, a.published_at,
       a.published_at_estimated, s.article_id IS NOT NULL AS indexed
FROM articles a LEFT JOIN article_signals s ON s.article_id = a.id
WHERE a.id = ANY($1::bigint[])
ORDER BY a.id
FOR KEY SHARE OF a
"""


async def lock_articles(w: Writer, article_ids: Sequence[int]) -> list[QueuedArticle]:
    """The claimed articles that still exist (taken-down ids are simply missing)."""
    rows = await w.fetch(LOCK_ARTICLES, list(article_ids))
    return [QueuedArticle(**r) for r in rows]


NOTIFY_INDEXED: Final = "SELECT pg_notify($1, 'article_signals')"


async def notify_indexed(w: Writer) -> None:
    """Tell response caches that related stories changed (delivered at commit)."""
    await w.execute(NOTIFY_INDEXED, CHANGES_CHANNEL)


QUEUE_DEPTH: Final = "SELECT count(*) FROM related_queue"


async def queue_depth(db: Database) -> int:
    """Articles waiting to be indexed (those being indexed right now included)."""
    return int(await db.fetchval(QUEUE_DEPTH))


async def open_indexer_connection(
    dsn: str, *, statement_cache_size: int = 100
) -> asyncpg.Connection[Any]:
    """A connection of its own for a background indexer (it LISTENs, so not a pooled one).

    Behind PgBouncer in transaction mode pass `statement_cache_size=0` (as the pools do);
    notifications do not pass such a pooler, and the indexer then finds work by polling.
    """
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        dsn,
        statement_cache_size=statement_cache_size,
        server_settings={"application_name": "newsgraph-indexer", **SESSION_SETTINGS},
    )
    return conn
