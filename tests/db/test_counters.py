from __future__ import annotations

import asyncio
import uuid

import pytest

from service.db import counters
from service.db.counters import FOLD_LOCK_KEY, CountFolder, fold_counts, pending_deltas
from service.db.notify import CHANNEL
from service.db.pool import Database, connect
from service.errors import ServiceUnavailable
from service.ingest.pipeline import ingest_batch, load_catalogue
from tests.factories import article_input

RUN = uuid.uuid4().hex[:10]
LINK = """
INSERT INTO article_entities (article_id, entity_id, salience, mention_count, published_at)
SELECT $1, $2, 0.5, 1, published_at FROM articles WHERE id = $1
"""


async def _entity(db: Database, name: str) -> int:
    [entity_id] = await load_catalogue(db, [{"name": f"{name} {RUN}", "kind": "OTHER"}])
    return entity_id


async def _count(db: Database, entity_id: int) -> int:
    count: int = await db.fetchval("SELECT article_count FROM entities WHERE id = $1", entity_id)
    return count


async def _until_counted(db: Database, entity_id: int, count: int) -> None:
    """Wait (up to 5 s) until a background fold has brought the entity to `count`."""
    async with asyncio.timeout(5):
        while True:
            if await _count(db, entity_id) == count:
                return
            await asyncio.sleep(0.05)


async def test_writes_leave_deltas_that_a_fold_applies(db: Database) -> None:
    entity_id = await _entity(db, "Deltas Entity")
    mention = [{"name": f"Deltas Entity {RUN}", "kind": "OTHER"}]
    await ingest_batch(db, [article_input(entities=mention) for _ in range(3)])
    assert await _count(db, entity_id) == 0  # not yet folded
    assert await pending_deltas(db) > 0
    assert await fold_counts(db)
    assert await _count(db, entity_id) == 3
    assert await pending_deltas(db) == 0


async def test_writers_linking_one_entity_do_not_wait_for_each_other(
    db: Database, database_url: str
) -> None:
    entity_id = await _entity(db, "Shared Entity")
    results = await ingest_batch(db, [article_input(), article_input()])
    first, second = (r.article_id for r in results)
    a, b = await connect(database_url), await connect(database_url)
    try:
        async with a.transaction():
            await a.execute(LINK, first, entity_id)
            async with b.transaction():
                # With counters updated in the writing transaction, b waited for a's commit.
                await b.execute("SET LOCAL lock_timeout = '1s'")
                await b.execute(LINK, second, entity_id)
        # a committed, b's delta with it; an uncommitted delta waits for a later fold.
        async with b.transaction():
            await b.execute("DELETE FROM article_entities WHERE article_id = $1", first)
            assert await fold_counts(db)
            assert await _count(db, entity_id) == 2
        assert await fold_counts(db)
        assert await _count(db, entity_id) == 1
    finally:
        await a.close()
        await b.close()


async def test_one_process_folds_at_a_time(db: Database, database_url: str) -> None:
    await ingest_batch(db, [article_input()])  # a source's delta to fold
    holder = await connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK_KEY)
            assert not await fold_counts(db)
        assert await fold_counts(db)
    finally:
        await holder.close()


async def test_a_fold_with_nothing_to_fold_tells_no_cache_of_a_change(
    db: Database, database_url: str
) -> None:
    await fold_counts(db)  # whatever earlier tests left
    heard: list[str] = []
    listener = await connect(database_url)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
        assert await fold_counts(db)
        await ingest_batch(db, [article_input()])
        await asyncio.sleep(0.2)  # notifications arrive after commit
        assert "articles" in heard
        heard.clear()
        assert await fold_counts(db)  # the new article's source delta: a change, heard
        await asyncio.sleep(0.2)
        assert heard == ["sources"]
        heard.clear()
        assert await fold_counts(db)  # nothing left: no write, nothing heard
        await asyncio.sleep(0.2)
        assert heard == []
    finally:
        await listener.close()


async def test_the_folder_keeps_counts_up_to_date_in_the_background(db: Database) -> None:
    entity_id = await _entity(db, "Folded Entity")
    folder = CountFolder(db, every=0.05)
    folder.start()
    try:
        mention = [{"name": f"Folded Entity {RUN}", "kind": "OTHER"}]
        await ingest_batch(db, [article_input(entities=mention)])
        await _until_counted(db, entity_id, 1)
    finally:
        await folder.stop()


async def test_the_folder_goes_on_after_a_failed_fold(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    entity_id = await _entity(db, "Retried Entity")
    mention = [{"name": f"Retried Entity {RUN}", "kind": "OTHER"}]
    await ingest_batch(db, [article_input(entities=mention)])
    failures: list[int] = []

    async def flaky(db: Database) -> bool:
        if not failures:
            failures.append(1)
            raise ServiceUnavailable("down for a moment")
        return await fold_counts(db)

    monkeypatch.setattr(counters, "fold_counts", flaky)
    folder = CountFolder(db, every=0.05)
    folder.start()
    try:
        await _until_counted(db, entity_id, 1)
    finally:
        await folder.stop()
    assert failures == [1]
