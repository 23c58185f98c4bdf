"""Related-stories indexing after commit: claims queued articles and indexes them.

Ingest only queues the ids it created or changed (`service.db.related_queue.enqueue`, in
its transaction). Indexing (document frequencies, vectors, postings, LSH bands, wire copies,
story clusters: `service.related.clustering.index_articles`) happens here, in a transaction
of its own that also deletes the claimed ids: committed together, or rolled back together
(the ids are then queued again). So related stories, stories and `duplicateOf` are eventually
consistent: an acknowledged article is indexed within seconds, never lost.

`index_queued(db)` indexes one batch; `drain(db)` indexes until the queue is empty (tests,
`newsgraph ingest`, the demo loader). `RelatedIndexer` is the background worker of the
indexer process (`service.related.worker`, the default) or of each server process
(`NEWSGRAPH_RELATED_INDEXER=thread`): a thread with its own event loop and its own
connection, so neither its Python work
(text features, TF-IDF vectors, clustering) nor the decoding of its rows runs on the
request-serving event loop; it wakes on `NOTIFY newsgraph_related_queue` (sent when an
ingest commits) or after `poll` seconds. Several processes (workers, pods) share the queue:
claims skip the rows another indexer holds (`FOR UPDATE SKIP LOCKED`).

In a server process that ingests (`lists.note_ingest`), the indexer thread may be held to
`ingesting_share` of the wall time (`NEWSGRAPH_RELATED_INDEX_PERCENT_INGESTING`; 100 %, no
limit, by default): acknowledging then comes first and indexing catches up when the load
ends (the queue is durable). Measured on a 30k-article NDJSON load into the 1M bench
database: at 25 % the stream was acknowledged 17 % faster (503 against 428 articles/s) but
everything was indexed 22 % later (251 against 321 articles/s), since indexing alone after
the load uses one core of two. So full speed is the default; an operator who wants a partner's
upload answered sooner can lower it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg

from service.db import related_queue
from service.db.pool import Database
from service.related.clustering import WrittenArticle, index_articles

__all__ = ["BATCH_SIZE", "RelatedIndexer", "drain", "index_queued", "pause_after"]

log = logging.getLogger("newsgraph.related")

BATCH_SIZE: Final = 2000
POLL_SECONDS: Final = 1.0
DEPTH_EVERY: Final = 2.0  # seconds between queue-depth readings of a busy indexer
RETRY_SECONDS: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
_RETRYABLE: Final = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


async def index_queued(db: Database, limit: int = BATCH_SIZE) -> int:
    """Claim up to `limit` queued articles, index them, delete them from the queue: one
    transaction. Returns how many ids were claimed (taken-down ones included, which are
    dropped without indexing); 0 when nothing is queued or everything queued is held by
    other indexers."""
    for attempt in range(3):
        try:
            async with db.transaction() as w:
                claimed = await related_queue.claim(w, limit)
                if not claimed:
                    return 0
                articles = await related_queue.lock_articles(w, claimed)
                await index_articles(
                    w,
                    [
                        WrittenArticle(
                            article_id=a.id,
                            created=not a.indexed,
                            source_id=a.source_id,
                            language=a.language,
                            title=a.title,
                            summary=a.summary,
                            body=a.body,
                            published_at=a.published_at,
                            estimated=a.published_at_estimated,
                        )
                        for a in articles
                    ],
                )
                if articles:
                    await related_queue.notify_indexed(w)
                return len(claimed)
        except _RETRYABLE:
            # Deadlocks with an ingest or takedown that locks the same rows: try again.
            if attempt == 2:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def pause_after(spent: float, share: float, ingesting: bool) -> float:
    """Seconds to pause after a batch that took `spent` seconds: none unless the process is
    ingesting, then enough to use at most `share` (0-1] of the wall time."""
    if not ingesting or share >= 1:
        return 0.0
    return spent * (1 / share - 1)


async def drain(db: Database, *, limit: int = BATCH_SIZE) -> int:
    """Index until the queue is empty, waiting for rows other indexers hold; returns the
    number of ids this call claimed (bound it with `asyncio.timeout`)."""
    done = 0
    while True:
        claimed = await index_queued(db, limit)
        done += claimed
        if claimed:
            continue
        if await related_queue.queue_depth(db) == 0:
            return done
        # Held by another indexer (or by an ingest not yet committed): wait for it.
        await asyncio.sleep(0.05)


class RelatedIndexer:
    """The background indexer of one process (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        batch_size: int = BATCH_SIZE,
        poll: float = POLL_SECONDS,
        write_timeout_ms: int | None = None,
        statement_cache_size: int = 100,
        on_depth: Callable[[int, int], None] | None = None,
        ingesting_share: float = 1.0,
        ingesting: Callable[[], bool] = lambda: False,
    ) -> None:
        self.dsn = dsn
        self.ingesting_share = ingesting_share
        self.ingesting = ingesting
        self.batch_size = batch_size
        self.poll = poll
        self.write_timeout_ms = write_timeout_ms
        self.statement_cache_size = statement_cache_size
        self.on_depth = on_depth
        self.depth: int | None = None  # last reading of the queue depth (None: not yet)
        self.indexed = 0  # ids claimed by this process since it started
        self._reported = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._main, name="newsgraph-related-indexer", daemon=True
        )
        self._thread.start()
        self._ready.wait(5)

    async def stop(self, within: float = 10.0) -> None:
        """Stop (a batch being indexed is rolled back: its ids stay queued)."""
        thread, loop, task = self._thread, self._loop, self._task
        if thread is None:
            return
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(task.cancel)
        await asyncio.to_thread(thread.join, within)
        if thread.is_alive():
            log.warning("related indexer did not stop within %.0f s", within)
        self._thread = None

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._run())
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _report(self, depth: int) -> None:
        """Publish a queue-depth reading, with the ids claimed since the last one."""
        self.depth = depth
        fresh, self._reported = self.indexed - self._reported, self.indexed
        if self.on_depth is not None:
            self.on_depth(depth, fresh)

    async def _run(self) -> None:
        failures = 0
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await related_queue.open_indexer_connection(
                    self.dsn, statement_cache_size=self.statement_cache_size
                )
                wake = asyncio.Event()
                await conn.add_listener(
                    related_queue.QUEUE_CHANNEL, lambda *_args, wake=wake: wake.set()
                )
                db = Database(conn, write_timeout_ms=self.write_timeout_ms)
                last_depth = 0.0
                while True:
                    wake.clear()
                    started = time.perf_counter()
                    claimed = await index_queued(db, self.batch_size)
                    self.indexed += claimed
                    failures = 0
                    now = time.monotonic()
                    if not claimed or now - last_depth >= DEPTH_EVERY:
                        self._report(await related_queue.queue_depth(db))
                        last_depth = now
                    if claimed:
                        spent = time.perf_counter() - started
                        await asyncio.sleep(
                            pause_after(spent, self.ingesting_share, self.ingesting())
                        )
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning(
                    "related indexer: %r; queued articles stay queued, retrying in %.0f s",
                    exc,
                    delay,
                    exc_info=not isinstance(exc, OSError | asyncpg.PostgresConnectionError),
                )
                await asyncio.sleep(delay)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)
