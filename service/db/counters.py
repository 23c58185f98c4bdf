"""Article counts of entities and sources, folded from the deltas writers append.

Since migration 0011 no writer updates `entities.article_count` or `sources.article_count`:
the statement triggers on `article_entities` and `articles` append each statement's net
change per entity and per source to `entity_count_deltas` / `source_count_deltas`, which
have no index and no key, so appending is cheap and concurrent writers never wait on the
popular rows (they did, for the whole batch, when the triggers updated the counters).
`fold_counts` adds up the deltas committed so far, applies them and deletes them in one
transaction; rows of transactions still running are invisible to it and wait for the next
fold. `CountFolder` runs it every `every` seconds in each server process (and in
`newsgraph ingest`); the fold takes a transaction-level advisory lock, so when several
processes fold, one does and the others skip.

So counts trail the commits that change them by about a fold interval (README,
"Consistency"); a fold that fails leaves the deltas for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final

import asyncpg

from service.db.pool import Database, Writer
from service.errors import ServiceUnavailable

__all__ = [
    "FOLD_SECONDS",
    "CountFolder",
    "fold_counts",
    "fold_entity_counts",
    "lock_folds",
    "pending_deltas",
]

log = logging.getLogger("newsgraph.counters")

FOLD_SECONDS: Final = 1.0
FOLD_LOCK_KEY: Final = 7_412_639_045_118_202_313

TRY_LOCK: Final = "SELECT pg_try_advisory_xact_lock($1)"
LOCK: Final = "SELECT pg_advisory_xact_lock($1)"

# Deleting and applying in one statement: what is deleted is exactly what is applied.
FOLD_ENTITIES: Final = """
WITH taken AS (DELETE FROM entity_count_deltas RETURNING entity_id, delta),
sums AS (SELECT entity_id, sum(delta) AS delta FROM taken GROUP BY entity_id)
UPDATE entities e SET article_count = greatest(e.article_count + s.delta, 0)
FROM sums s WHERE e.id = s.entity_id AND s.delta <> 0
"""

FOLD_SOURCES: Final = """
WITH taken AS (DELETE FROM source_count_deltas RETURNING source_id, delta),
sums AS (SELECT source_id, sum(delta) AS delta FROM taken GROUP BY source_id)
UPDATE sources s SET article_count = greatest(s.article_count + d.delta, 0)
FROM sums d WHERE s.id = d.source_id AND d.delta <> 0
"""

FOLD_SOME_ENTITIES: Final = """
WITH taken AS (
    DELETE FROM entity_count_deltas WHERE entity_id = ANY($1::bigint[])
    RETURNING entity_id, delta
),
sums AS (SELECT entity_id, sum(delta) AS delta FROM taken GROUP BY entity_id)
UPDATE entities e SET article_count = greatest(e.article_count + s.delta, 0)
FROM sums s WHERE e.id = s.entity_id AND s.delta <> 0
"""

ANY_DELTAS: Final = """
SELECT EXISTS (SELECT 1 FROM source_count_deltas), EXISTS (SELECT 1 FROM entity_count_deltas)
"""
PENDING: Final = """
SELECT (SELECT count(*) FROM entity_count_deltas) + (SELECT count(*) FROM source_count_deltas)
"""

_RETRYABLE: Final = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.LockNotAvailableError,
)


async def fold_counts(db: Database) -> bool:
    """Apply the committed deltas to the counters; False when another process was folding.

    With nothing to fold it writes nothing: an UPDATE of no rows still fires the statement
    triggers that tell response caches the data changed (migration 0006), and an idle
    server folding every second would empty every worker's cache every second."""
    row = await db.fetchrow(ANY_DELTAS)
    sources, entities = (row[0], row[1]) if row is not None else (True, True)
    if not (sources or entities):
        return True
    async with db.transaction() as w:
        if not await w.fetchval(TRY_LOCK, FOLD_LOCK_KEY):
            return False
        if sources:
            await w.execute(FOLD_SOURCES)
        if entities:
            await w.execute(FOLD_ENTITIES)
        return True


async def lock_folds(w: Writer) -> None:
    """Keep folds out until the caller's transaction ends. Take it before locking any entity
    row, as a fold does (advisory lock, then entity rows), or the two can deadlock."""
    await w.fetchval(LOCK, FOLD_LOCK_KEY)


async def fold_entity_counts(w: Writer, entity_ids: Sequence[int]) -> None:
    """Apply the deltas of these entities in the caller's transaction, which sees its own
    (after `lock_folds`)."""
    await w.execute(FOLD_SOME_ENTITIES, list(entity_ids))


async def pending_deltas(db: Database) -> int:
    """Delta rows not folded yet (committed ones; a transaction sees its own too)."""
    return int(await db.fetchval(PENDING))


class CountFolder:
    """Folds the counters every `every` seconds, on the process's pool, until stopped."""

    def __init__(self, db: Database, every: float = FOLD_SECONDS) -> None:
        self.db = db
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="newsgraph-count-folder")

    async def stop(self) -> None:
        """Stop; a fold in progress is rolled back (its deltas stay for the next one)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await fold_counts(self.db)
            except _RETRYABLE:
                continue  # a catalogue change holds the same entities: next time
            except (ServiceUnavailable, asyncpg.PostgresError, OSError) as exc:
                log.warning("folding article counts failed (%r); the deltas stay pending", exc)
